#!/usr/bin/env python3
"""vllm_fused_moe.py: a moefuzz exec adapter that runs vLLM 0.33.0's bf16 fused MoE.

vLLM's own Triton kernel (`fused_moe_kernel`) and its launcher, config choice and torch router
run unchanged: where `import vllm` works they are vLLM's functions; otherwise they are read at
run time from the user's copy of vLLM's sources (the unpacked sdist, --vllm-src DIR) by AST
extraction, never copied. The C++ ops vLLM calls on this path (moe_align_block_size,
silu_and_mul, moe_sum, topk_softmax / topk_sigmoid, the CUDA grouped_topk) are not loadable
from Python; they are computed here in torch step by step as their CUDA sources define them
(the file and line of each rounding are cited at each op below).

    moefuzz check --backend 'exec:python3 -m moefuzz.adapters.vllm_fused_moe --vllm-src DIR' CASES
    moefuzz check --backend 'exec:python3 python/moefuzz/adapters/vllm_fused_moe.py --vllm-src DIR' CASES

The second form needs no installed moefuzz package (only torch, triton and numpy). On a CUDA
device the kernel is compiled by Triton; without CUDA it runs Triton's interpreter
(TRITON_INTERPRET=1, set by the adapter before triton is imported; patch_interpreter below).
Both declare the contract of the router path (--router): `vllm-0.33-triton-sm90` or
`vllm-0.33-triton-sm90-torch-router`; with --fp8, `vllm-0.33-triton-fp8-sm90` (the CUDA router
path, bf16 cases as `vllm-0.33-triton-sm90`, and fp8_block cases through vLLM's FP8 block-scale
path: fused_experts with use_fp8_w8a8 and block_shape [block_n, block_k], e4m3 w13 and w2 with
their fp32 block scales, the activations quantized by per_token_group_fp8_quant, computed here
in torch as csrc/quantization/w8a8/fp8/per_token_group_quant.cu does; docs/notes/vllm-adapter.md,
"FP8 block scale"). The interpreter computes each tl.dot as numpy's fp32
matmul (BLAS order) of one K block, added to the accumulator: not the wgmma chain the contract
assumes, but it passed that contract on every supported seed where `any-order` (no intermediate
bf16 roundings) rejects 11 (docs/notes/vllm-adapter.md); --cpu-contract NAME declares another.
With --fp8 --served, `vllm-0.33-triton-fp8-served-sm90`: the modular TritonExperts.apply that a
served FP8 model runs (fm/experts/triton_moe.py l. 520-545), whose activation and intermediate
quantizer are one op, silu_and_mul_per_block_quant, computed here in torch as its CUDA source
does; it runs for fp32 scales and 128 x 128 blocks only.

Options:
  --vllm-src DIR         vLLM 0.33.0's unpacked sdist (or the few files listed in VLLM_FILES)
  --router cuda|torch    which of vLLM's router contracts to declare: `cuda` (topk_softmax,
                         topk_sigmoid, the CUDA grouped_topk: vllm-0.33-triton-sm90) or
                         `torch` (the torch grouped_topk: vllm-0.33-triton-sm90-torch-router).
                         A case that vLLM routes through the other one is answered
                         `unsupported` with the path's name. Default cuda.
  --device cuda|cpu      default: cuda when torch sees one
  --cpu-contract NAME    the contract declared on the CPU (default: the router path's)
  --fp8                  run fp8_block cases too (vLLM's FP8 block-scale path) and declare
                         vllm-0.33-triton-fp8-sm90 (with --router cuda only); without it an
                         fp8_block case is answered `unsupported`
  --served               with --fp8: vLLM's modular path as a served FP8 model runs it (the
                         fused silu_and_mul_per_block_quant) and declare
                         vllm-0.33-triton-fp8-served-sm90; UE8M0 scales and blocks other than
                         128 x 128, where vLLM takes the unfused path, are answered `unsupported`
  --no-cache             do not announce cache=weights
  --raw-interpreter      on the CPU, leave Triton's interpreter as it is (patch_interpreter:
                         unpatched, Triton 3.6's interpreter reads bf16 dot operands as
                         integers and truncates fp32 -> bf16 casts; kept for measurement)
Environment: VLLM_ADAPTER_BUG=drop-rsf runs vLLM with routed_scaling_factor 1.0 wherever the
case has another (the seam of vLLM PR #43769: a caller that does not pass the factor).
VLLM_USE_FUSED_MOE_GROUPED_TOPK, VLLM_BATCH_INVARIANT, VLLM_TRITON_USE_TD and
VLLM_TUNED_CONFIG_FOLDER are read as vllm/envs.py reads them. Every reply line goes to stdout;
the path each case ran (router, config) is logged to stderr.
"""
import functools
import json
import os
import re
import sys
import types
from typing import Any

try:
    from ._exec_common import (Unsupported, choose_device, load_functions, patch_interpreter,
                               ExecAdapter, serve)
except ImportError:  # run as a script: the sibling module
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _exec_common import (Unsupported, choose_device, load_functions, patch_interpreter,
                              ExecAdapter, serve)

# vLLM's files this adapter reads (paths inside --vllm-src); the lead's GPU run carries only these
FM = "vllm/model_executor/layers/fused_moe/"
VLLM_FILES = {
    "fused_moe": FM + "fused_moe.py",
    "align": FM + "moe_align_block_size.py",
    "grouped": FM + "router/grouped_topk_router.py",
    "utils": FM + "utils.py",
}
CONFIG_DIR = FM + "configs"  # tuned configs: optional, read if present (get_moe_configs)

BUG = os.environ.get("VLLM_ADAPTER_BUG", "")


def log(msg):
    print("vllm_fused_moe: " + msg, file=sys.stderr, flush=True)


# ---- loading vLLM's functions ----

def _env_flag(name, default):
    return bool(int(os.getenv(name, default)))


# vllm/envs.py l. 638, 649, 1636: the variables the loaded functions read, parsed the same way
ENVS = types.SimpleNamespace(
    VLLM_BATCH_INVARIANT=_env_flag("VLLM_BATCH_INVARIANT", "0"),
    VLLM_TRITON_USE_TD={"1": True, "0": False}.get(os.getenv("VLLM_TRITON_USE_TD", "").strip()),
    VLLM_USE_FUSED_MOE_GROUPED_TOPK=_env_flag("VLLM_USE_FUSED_MOE_GROUPED_TOPK", "1"),
    VLLM_TUNED_CONFIG_FOLDER=os.getenv("VLLM_TUNED_CONFIG_FOLDER"),
    VLLM_MOE_SKIP_PADDING=False,
)


class Platform:
    """vllm.platforms.current_platform as vLLM sees an NVIDIA GPU: the adapter models vLLM's CUDA
    platform on both devices (without CUDA only the Triton execution changes)."""

    simple_compile_backend = "inductor"

    def __init__(self, device):
        self.device = device

    def is_cuda(self):
        return True

    def is_rocm(self):
        return False

    def is_xpu(self):
        return False

    def is_cuda_alike(self):
        return True

    def is_device_capability(self, capability):
        # the contracts are Hopper's (sm_90): on the CPU the adapter models vLLM on an H100
        if self.device != "cuda":
            return capability == 90
        import torch
        major, minor = torch.cuda.get_device_capability()
        return major * 10 + minor == capability

    def get_device_name(self, device_id=0):
        import torch
        return torch.cuda.get_device_name(device_id) if self.device == "cuda" else "cpu"


class Logger:
    def _emit(self, msg, *args, **_):
        log(msg % args if args else msg)

    info = warning = debug = info_once = warning_once = debug_once = _emit


class Vllm:
    """vLLM's functions for this path: from the installed package, or from --vllm-src."""

    def __init__(self, src, device, raw_interpreter=False):
        import torch
        import triton
        import triton.language as tl
        if device == "cpu" and not raw_interpreter:
            patch_interpreter()
        self.device = device
        self.platform = Platform(device)
        self.ops = Ops(self)
        self.router_path = None
        try:
            if src:
                raise ImportError("--vllm-src given")
            import vllm  # noqa: F401  (the installed package: its own functions, its own ops)
            from vllm.model_executor.layers.fused_moe import fused_moe as fm
            from vllm.model_executor.layers.fused_moe.router import grouped_topk_router as gr
            from vllm.model_executor.layers.fused_moe import moe_align_block_size as al
            from vllm import _custom_ops as vops
            from vllm.model_executor.layers.quantization.utils import fp8_utils
            self.origin = "installed vllm %s" % getattr(vllm, "__version__", "?")
            # vLLM's own C++ ops (not exercised here: vllm cannot be installed on these machines)
            self.ops = types.SimpleNamespace(
                moe_align_block_size=vops.moe_align_block_size, moe_sum=vops.moe_sum,
                topk_softmax=vops.topk_softmax, topk_sigmoid=vops.topk_sigmoid,
                grouped_topk=vops.grouped_topk,
                silu_and_mul=lambda out, x: torch.ops._C.silu_and_mul(out, x),
                per_token_group_fp8_quant=lambda x, g, eps, ue8m0: fp8_utils.
                per_token_group_quant_fp8(x, g, eps, use_ue8m0=ue8m0))
            self.fn = types.SimpleNamespace(
                invoke=fm.invoke_fused_moe_triton_kernel, default_config=fm.get_default_config,
                moe_configs=fm.get_moe_configs, prepare=fm._prepare_expert_assignment,
                grouped_topk=gr.grouped_topk, align=al.moe_align_block_size)
            self.installed = True
            return
        except ImportError as e:
            if not src:
                raise ImportError("vllm does not import (%s) and no --vllm-src was given" % e)
        self.installed = False
        for f in VLLM_FILES.values():
            if not os.path.isfile(os.path.join(src, f)):
                raise RuntimeError("--vllm-src %s: %s is missing (needed: %s)"
                                   % (src, f, ", ".join(VLLM_FILES.values())))
        fm_path = os.path.realpath(os.path.join(src, VLLM_FILES["fused_moe"]))
        ns = {"torch": torch, "triton": triton, "tl": tl, "os": os, "json": json,
              "functools": functools, "Any": Any, "envs": ENVS, "logger": Logger(),
              "current_platform": self.platform, "__file__": fm_path, "__name__": "vllm_fm"}
        # vllm/utils/platform_utils.py l. 69-74
        ns["get_device_name_as_file_name"] = lambda device_id=0: re.sub(
            r"[\s/]+", "_", self.platform.get_device_name(device_id))
        load_functions(os.path.join(src, VLLM_FILES["utils"]), ["resolve_moe_use_td"], ns,
                       project="vLLM 0.33.0")
        ns["warn_if_moe_use_td_ineffective"] = lambda *a, **k: None  # a warning only

        def no_td_allocator(device):
            raise Unsupported("VLLM_TRITON_USE_TD=1: the tensor-descriptor path is not run here")
        ns["set_triton_allocator"] = no_td_allocator
        load_functions(os.path.join(src, VLLM_FILES["utils"]), ["enable_swap_ab"], ns,
                       project="vLLM 0.33.0")  # fm/utils.py l. 705-711 (use_fp8_w8a8 only)
        load_functions(fm_path, ["write_zeros_to_output", "fused_moe_kernel",
                                 "invoke_fused_moe_triton_kernel", "get_config_file_name",
                                 "get_moe_configs", "get_default_config",
                                 "_prepare_expert_assignment"], ns)
        align_ns = {"torch": torch, "triton": triton, "ops": self.ops, "Literal": Any,
                    "overload": lambda f: f, "round_up": lambda x, y: (x + y - 1) // y * y}
        load_functions(os.path.join(src, VLLM_FILES["align"]), ["moe_align_block_size"], align_ns)
        ns["moe_align_block_size"] = align_ns["moe_align_block_size"]
        grouped_ns = {"torch": torch, "ops": self.ops, "envs": ENVS,
                      "current_platform": self.platform}
        load_functions(os.path.join(src, VLLM_FILES["grouped"]),
                       ["fused_grouped_topk", "grouped_topk"], grouped_ns)
        self.origin = "vLLM sources in %s" % src
        self.fn = types.SimpleNamespace(
            invoke=ns["invoke_fused_moe_triton_kernel"], default_config=ns["get_default_config"],
            moe_configs=ns["get_moe_configs"], prepare=ns["_prepare_expert_assignment"],
            grouped_topk=grouped_ns["grouped_topk"], align=ns["moe_align_block_size"])

    def config(self, w1_shape, w2_shape, top_k, M, block_shape=None):
        """try_get_optimal_moe_config (fm/fused_moe.py l. 1421-1450) without an override config
        (vLLM's get_config() is None outside its config context): the tuned JSON for (E, N,
        dtype, block, device) if vLLM has one, else get_default_config; dtype "fp8_w8a8" with a
        block_shape (FP8 block scale), else None (bf16). Returns (config, where from)."""
        E, _, N = w2_shape
        dtype = "fp8_w8a8" if block_shape else None
        bn, bk = block_shape if block_shape else (0, 0)
        if self.device == "cuda":
            configs = self.fn.moe_configs(E, N, dtype, bn, bk)
            if configs:
                return dict(configs[min(configs.keys(), key=lambda x: abs(x - M))]), "tuned"
        return (self.fn.default_config(M, E, N, w1_shape[2], top_k, dtype, block_shape),
                "default")


# ---- vLLM's C++ ops, in torch, as their CUDA sources compute them ----

class Ops:
    """The `ops` the loaded functions call (vllm/_custom_ops.py), computed in torch. Only the
    arithmetic of the paths below is modelled; anything else raises Unsupported."""

    def __init__(self, owner):
        self.owner = owner

    # csrc/moe/moe_align_sum_kernels.cu: _moe_align_block_size(_small_batch_expert) l. 139-340.
    # sorted_token_ids filled with numel (l. 155-158, 250-253); per local expert (expert_map
    # applied, ids outside [0, num_experts) and unmapped ones skipped: get_local_expert_id l.
    # 119-131) its slots padded to a multiple of block_size (cumsum l. 300-309); expert_ids per
    # block, the remaining blocks -1 (l. 312-318). The order of the slots inside an expert's
    # blocks differs between the kernels (thread order); the values computed do not depend on it.
    def moe_align_block_size(self, topk_ids, num_experts, block_size, sorted_ids, expert_ids,
                             num_tokens_post_pad, expert_map=None, scatter_idx=None):
        import torch
        if scatter_idx is not None:
            raise Unsupported("moe_align_block_size with scatter_idx is not modelled")
        flat = topk_ids.reshape(-1).long()
        numel = flat.numel()
        valid = (flat >= 0) & (flat < num_experts)
        local = torch.where(valid, flat, torch.zeros_like(flat))
        if expert_map is not None:
            local = torch.where(valid, expert_map.long()[local], torch.full_like(local, -1))
        local = torch.where(valid, local, torch.full_like(local, -1))
        sorted_ids.fill_(numel)
        expert_ids.fill_(-1)
        pos, blk = 0, 0
        for e in range(num_experts):
            slots = torch.nonzero(local == e).reshape(-1)
            n = slots.numel()
            if n == 0:
                continue
            sorted_ids[pos:pos + n] = slots.to(sorted_ids.dtype)
            padded = (n + block_size - 1) // block_size * block_size
            expert_ids[blk:blk + padded // block_size] = e
            pos += padded
            blk += padded // block_size
        num_tokens_post_pad.fill_(pos)

    # csrc/activation_kernels.cu: silu_kernel<T> l. 167 returns (T)(x / (1.0f + expf(-x))): fp32
    # expf, 1 + e and the division each rounded to fp32, the result rounded to bf16; compute l.
    # 44-81 takes the product with up in fp32 (`activated.x *= u.x + beta`, beta 0: -0 becomes
    # +0) and rounds it once to bf16.
    def silu_and_mul(self, out, x):
        import torch
        d = x.shape[-1] // 2
        g, u = x[..., :d].float(), x[..., d:].float()
        s = (g / (1.0 + torch.exp(-g))).to(x.dtype).float()
        out.copy_((s * (u + 0.0)).to(out.dtype))

    # csrc/quantization/w8a8/fp8/per_token_group_quant.cu, which per_token_group_quant_fp8
    # (quantization/utils/fp8_utils.py l. 632-720) calls on CUDA for a contiguous row-major x:
    # per (row, group) amax = fmaxf from eps (l. 46-60, 237-240), y_s = amax / 448 (l. 68, 260);
    # UE8M0: y_s floored at 1e-10f and rounded up to a power of two, by the exponent bump for
    # groups of 128 of 16-bit input (CanUseRegisterPath l. 309-320, l. 261-268), else exp2f(
    # ceilf(log2f(.))) (l. 70); inv = 1.0f / y_s (l. 85, 283); q = e4m3(fminf(fmaxf(x * inv,
    # -448), 448)) (l. 89-90, 287-290). Each division is an elementwise IEEE fp32 division here
    # (a tensor divisor: torch divides by a scalar as a multiply by its reciprocal on CUDA).
    def per_token_group_fp8_quant(self, x, group_size, eps, use_ue8m0):
        import torch
        T, K = x.shape
        if K % group_size:
            raise Unsupported("a row of %d is not a multiple of the group %d: vLLM's "
                              "per_token_group_quant_fp8 asserts it (fp8_utils.py l. 669)"
                              % (K, group_size))
        g = x.float().reshape(T, K // group_size, group_size)
        eps32 = torch.tensor(eps, dtype=torch.float32, device=x.device)
        amax = torch.maximum(g.abs().amax(dim=2), eps32)
        s = amax / torch.full_like(amax, 448.0)
        if use_ue8m0:
            s = torch.maximum(s, torch.full_like(s, 1e-10))
            if group_size == 128 and x.dtype in (torch.bfloat16, torch.float16):
                bits = s.view(torch.int32)
                e = ((bits >> 23) & 0xFF) + ((bits & 0x7FFFFF) != 0).to(torch.int32)
                s = (e << 23).view(torch.float32)
            else:
                s = torch.exp2(torch.ceil(torch.log2(s)))
        inv = torch.ones_like(s) / s
        q = torch.clamp(g * inv[:, :, None], -448.0, 448.0).to(torch.float8_e4m3fn)
        return q.reshape(T, K), s.contiguous()

    # csrc/quantization/fused_kernels/fused_silu_mul_block_quant.cu, which
    # TritonExperts.apply calls through ops.silu_and_mul_per_block_quant (_custom_ops.py l.
    # 515-560: fp8 out [T, I], fp32 scales [T, I / group] row-major, no scale_ub) for SiLU, fp8
    # w8a8, block_shape [128, 128], no LoRA, DeepGEMM E8M0 off (fm/experts/triton_moe.py l.
    # 525-537). Per (row, group of 128): gate, up read from bf16 as fp32 (l. 54-55); sigmoid =
    # 1.0f / (1.0f + expf(-gate)), silu = gate * sigmoid, r = silu * up, each an IEEE fp32
    # operation, no bf16 rounding (l. 58-60; built without fast math: expf within 2 ulps,
    # torch.exp here); amax = fmaxf tree of fabsf (l. 63-73, exact); s = amax / 448, s =
    # fmaxf(s, 1.0f / (448 * 512.0f)) (l. 79-88, quantization/utils.cuh l. 50-54); q =
    # e4m3(fmin/fmax clamp of r / s to 448) (l. 101-102, quant_conversions.cuh l. 40-45, 64-76:
    # a division, not a reciprocal). Every division below is elementwise between tensors (a
    # scalar divisor would be a multiply by its reciprocal on CUDA). A NaN r differs: CUDA's
    # fmin/fmax return 448, torch.clamp keeps the NaN (the reference leaves such rows
    # unconstrained).
    def silu_and_mul_per_block_quant(self, x, group_size):
        import torch
        T, N = x.shape
        d = N // 2
        if d % group_size:
            raise Unsupported("I %d is not a multiple of %d: silu_and_mul_per_block_quant checks "
                              "it (fused_silu_mul_block_quant.cu l. 138-139)" % (d, group_size))
        g, u = x[:, :d].float(), x[:, d:].float()
        e = torch.exp(-g)
        sig = torch.ones_like(e) / (torch.ones_like(e) + e)
        r = (g * sig) * u
        amax = r.abs().reshape(T, d // group_size, group_size).amax(dim=2)
        s = amax / torch.full_like(amax, 448.0)
        one = torch.ones_like(s)
        floor = one / (torch.full_like(s, 448.0) * torch.full_like(s, 512.0))
        s = torch.maximum(s, floor)
        y = r.reshape(T, d // group_size, group_size) / s[:, :, None]
        q = torch.clamp(y, -448.0, 448.0).to(torch.float8_e4m3fn)
        return q.reshape(T, d), s.contiguous()

    # csrc/moe/moe_align_sum_kernels.cu: moe_sum_vec_kernel l. 420-462, moe_sum_scalar_kernel l.
    # 513-539: acc = 0.f; for k in slot order: acc += float(x_k), skipping slots whose id is < 0 or
    # unmapped (moe_sum_pad_aware_skip l. 409-417); one rounding to the output dtype.
    def moe_sum(self, inp, out, topk_ids=None, expert_map=None):
        import torch
        acc = torch.zeros(out.shape, dtype=torch.float32, device=out.device)
        for k in range(inp.shape[1]):
            y = inp[:, k, :].float()
            if topk_ids is not None:
                ids = topk_ids[:, k].long()
                keep = ids >= 0
                if expert_map is not None:
                    keep &= expert_map.long()[ids.clamp(min=0)] >= 0
                y = torch.where(keep[:, None], y, torch.zeros_like(y))
            acc = acc + y
        out.copy_(acc.to(out.dtype))

    def _topk(self, scores, bias, k, renormalize, rsf, family):
        """csrc/moe/topk_softmax_kernels.cu after scoring: keys = score + bias (fp32, l. 212-216,
        484-495); k rounds of argmax, the lower index on equal keys (l. 519-547; cub ArgMax in
        moeTopK l. 196-225): a stable descending sort. A selected key is cleared to -10000 in the
        warp kernel (l. 582) and each round of the general kernel starts from (-1, expert 0) (l.
        197): keys below those floors are outside what the kernels compute. Weight: the unbiased
        score; selected_sum a sequential fp32 sum in selection order; scale = (float)rsf; with
        renormalize scale /= (selected_sum > 0 ? selected_sum : 1); w = score * scale (l.
        586-598, 248-261)."""
        import torch
        keys = scores + bias.float()[None, :] if bias is not None else scores
        order = torch.sort(keys, dim=1, descending=True, stable=True)[1][:, :k]
        floor = -10000.0 if family == "warp" else -1.0
        if bool((torch.gather(keys, 1, order) < floor).any()):
            raise Unsupported("a selected key is below %g, where vLLM's topk %s kernel stops "
                              "selecting (csrc/moe/topk_softmax_kernels.cu l. %s)"
                              % (floor, family, "582" if family == "warp" else "197"))
        s = torch.gather(scores, 1, order)
        total = torch.zeros(s.shape[0], dtype=torch.float32, device=s.device)
        for j in range(k):
            total = total + s[:, j]
        scale = torch.full_like(total, float(torch.tensor(rsf, dtype=torch.float32)))
        if renormalize:
            scale = scale / torch.where(total > 0, total, torch.ones_like(total))
        return s * scale[:, None], order.to(torch.int32)

    @staticmethod
    def _family(E, sigmoid):
        # topkGatingKernelLauncher l. 680-775: the warp kernel for these E, else moeSoftmax /
        # moeSigmoid into a workspace and moeTopK
        warp = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 192, 320, 384, 448, 576}
        return "warp" if E in warp or (sigmoid and E == 352) else "general"

    def topk_softmax(self, topk_weights, topk_ids, token_expert_indices, gating, renormalize,
                     bias=None, is_padding=None):
        """topkGatingSoftmax l. 414-457 / moeSoftmax l. 79-139: m = max, e = expf(l - m), Z the
        fp32 sum, r = 1.f / Z, p = e * r (two roundings); a non-finite p becomes 0 (l. 136,
        471-477). rsf is not applied (topk_softmax passes 1.0, l. 860-893)."""
        import torch
        L = gating.float()
        e = torch.exp(L - L.max(dim=1, keepdim=True).values)
        r = 1.0 / e.sum(dim=1, keepdim=True)
        p = e * r
        p = torch.where(torch.isfinite(p), p, torch.zeros_like(p))
        w, ids = self._topk(p, bias, topk_ids.shape[1], renormalize, 1.0,
                            self._family(L.shape[1], False))
        topk_weights.copy_(w)
        topk_ids.copy_(ids)

    def topk_sigmoid(self, topk_weights, topk_ids, token_expert_indices, gating, renormalize,
                     bias=None, routed_scaling_factor=1.0, is_padding=None):
        """l. 157, 462: 1.0f / (1.0f + __expf(-x)) (ex2.approx; computed here with torch.exp:
        the contract's router exp is `fast`, which bounds both); NaN or Inf becomes 0 (l. 159)."""
        import torch
        L = gating.float()
        s = 1.0 / (1.0 + torch.exp(-L))
        s = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
        w, ids = self._topk(s, bias, topk_ids.shape[1], renormalize, routed_scaling_factor,
                            self._family(L.shape[1], True))
        topk_weights.copy_(w)
        topk_ids.copy_(ids)

    def grouped_topk(self, scores, n_group, topk_group, topk, renormalize, rsf, bias,
                     scoring_func=0):
        """csrc/moe/grouped_topk_kernels.cu, invokeNoAuxTc l. 1280-1378: only the small-expert-
        count kernel (grouped_topk_fused_small_expert_count_kernel, l. 640-860) is modelled,
        the one multi-group shapes such as DeepSeek-V3's take. Per expert: score = float(T),
        sigmoid_accurate 0.5f * tanhf(0.5f * x) + 0.5f in fp32 (l. 410; scoring_func 0 keeps the
        score), key = fl32(score + float(bias)) (l. 690-700); group score = top-2 keys summed,
        duplicates kept (reduceTopK, l. 720-724); top topk_group groups, then top topk experts of
        them, the lower index on equal keys (moeTopKFuncs.cuh l. 47-66); weight
        finalScore = (float)(score * rsf) with rsf a double, then with renormalize finalScore /=
        (redNorm + 1e-20) in double (redNorm the fp32 warp sum of the selected scores), rounded
        to fp32 (l. 833-838)."""
        import torch
        self.owner.router_path = "cuda-grouped_topk(small-expert-count)"
        T, E = scores.shape
        G = E // n_group
        small = (n_group > 1 and E <= 256 and G <= 32 and G * topk_group <= 128 and topk <= 8
                 and topk_group <= 4)
        if not small:
            raise Unsupported("vLLM's CUDA grouped_topk takes its generic kernel "
                              "(grouped_topk_fused_kernel, grouped_topk_kernels.cu l. 1360) or a "
                              "single-group kernel for this shape: not modelled by this adapter")
        x = scores.float()
        if not bool(torch.isfinite(x).all()):
            raise Unsupported("a non-finite logit on vLLM's CUDA grouped_topk small-expert kernel: "
                              "no finite check there, its NaN ordering (TwiddleIn) is unverified")
        s = 0.5 * torch.tanh(0.5 * x) + 0.5 if scoring_func == 1 else x
        key = s + bias.float()[None, :]
        top2 = torch.topk(key.view(T, n_group, G), 2, dim=2).values
        gscore = top2[:, :, 0] + top2[:, :, 1]
        gsel = torch.sort(gscore, dim=1, descending=True, stable=True)[1][:, :topk_group]
        keep = torch.zeros(T, n_group, dtype=torch.bool, device=x.device)
        keep.scatter_(1, gsel, True)
        masked = torch.where(keep.repeat_interleave(G, dim=1), key,
                             torch.full_like(key, float("-inf")))
        ids = torch.sort(masked, dim=1, descending=True, stable=True)[1][:, :topk]
        sel = torch.gather(s, 1, ids)
        w = (sel.double() * float(rsf)).float()
        if renormalize:
            red = sel.sum(dim=1, keepdim=True)  # fp32 (a warp tree sum in the kernel)
            w = (w.double() / (red.double() + 1e-20)).float()
        return w, ids.to(torch.int32)


# ---- one case: vLLM's call as a vLLM model makes it ----

def params(meta):
    p = {k: meta[k] for k in meta}
    for k in ("T", "H", "I", "E", "E_local", "expert_offset", "top_k", "n_group", "topk_group"):
        p[k] = int(meta[k])
    p["rsf"] = float(meta["rsf"])
    p["renormalize"] = meta["renormalize"] == "true"
    p["eps"] = float(meta["eps"])
    return p


def refuse_unexpressible(p, t, fp8=False, served=False):
    """What vLLM 0.33.0's fused MoE cannot express (or this adapter does not map)."""
    wf = p.get("weight_format", "bf16")
    if wf == "fp8_block" and served:
        bs = [int(p.get("block_n", "128")) or 128, int(p.get("block_k", "128")) or 128]
        if p.get("scale_format", "f32") == "ue8m0" or bs != [128, 128]:
            raise Unsupported("fp8_block with %s scales and blocks %d x %d: vLLM's modular path "
                              "fuses silu_and_mul_per_block_quant only for fp32 scales (DeepGEMM "
                              "E8M0 off) and block_shape [128, 128] (fm/experts/triton_moe.py l. "
                              "525-537), else it takes the unfused path: run without --served "
                              "(contract vllm-0.33-triton-fp8-sm90)"
                              % (p.get("scale_format", "f32"), bs[0], bs[1]))
    if wf == "fp8_block" and not fp8:
        raise Unsupported("weight_format fp8_block: run the adapter with --fp8 (vLLM's FP8 "
                          "block-scale path, contract vllm-0.33-triton-fp8-sm90)")
    if wf not in ("bf16", "fp8_block"):
        raise Unsupported("weight_format %s: this adapter maps vLLM's bf16 and FP8 block-scale "
                          "paths only" % wf)
    if wf == "fp8_block":
        refuse_fp8(p)
    if p.get("n_shared", "0") not in ("0", ""):
        raise Unsupported("shared experts: vLLM computes them outside fused_experts")
    if p.get("activation", "silu_glu") != "silu_glu":
        raise Unsupported("activation %s: this adapter maps silu_and_mul only" % p["activation"])
    if p.get("layout", "gate_up") != "gate_up":
        raise Unsupported("layout %s: vLLM's w13 holds gate rows then up rows" % p["layout"])
    if p.get("expert_bias", "none") != "none":
        raise Unsupported("expert biases: not mapped by this adapter")
    if p["score"] not in ("softmax", "sigmoid"):
        raise Unsupported("score %s: not on vLLM's topk / grouped_topk paths" % p["score"])
    if p["n_group"] > 1 and p.get("group_rule", "top2_sum") == "top2_sum" and p["bias"] == "none":
        raise Unsupported("top2_sum group scores without a bias: vLLM's grouped_topk takes the "
                          "group max when there is no bias (grouped_topk_router.py l. 115-121)")
    if p["n_group"] > 1 and p.get("group_rule") == "max" and p["bias"] != "none":
        raise Unsupported("group max with a bias: vLLM's grouped_topk takes the top-2 sum when "
                          "there is a bias (grouped_topk_router.py l. 110-114)")


def refuse_fp8(p):
    """The fp8_block cases vLLM's Triton block-scale path cannot run, or whose arithmetic the
    contract vllm-0.33-triton-fp8-sm90 does not model."""
    bn, bk = int(p.get("block_n", "128")), int(p.get("block_k", "128"))
    bn, bk = bn or 128, bk or 128
    if any(b < 32 or b & (b - 1) for b in (bn, bk)):
        raise Unsupported("fp8_block blocks %d x %d: vLLM's kernel takes BLOCK_SIZE_K = "
                          "min(block_n, block_k) as a Triton tile (a power of two); below 32 "
                          "it is less than one FP8 wgmma step (not modelled)" % (bn, bk))
    if bn < bk:
        raise Unsupported("fp8_block with block_n %d < block_k %d: BLOCK_SIZE_K = min(block_n, "
                          "block_k) (fm/fused_moe.py l. 842-844) splits each scale group into "
                          "tiles, each scaled and added on its own (not modelled)" % (bn, bk))
    if p["H"] % bk or p["I"] % bk:
        raise Unsupported("fp8_block: H %d or I %d not a multiple of block_k %d (vLLM's "
                          "per_token_group_quant_fp8 asserts it)" % (p["H"], p["I"], bk))


def fp8_tensors(t, device, E_local):
    """w13 and w2 as e4m3 (float8_e4m3fn) and their fp32 block scales, as vLLM's Fp8MoEMethod
    holds them for block quantization: w13 [E][2I][H], w2 [E][H][I], scales
    [E][ceil(rows / block_n)][ceil(K / block_k)] (weight_scale_inv)."""
    import numpy as np
    import torch

    def f8(name):
        return torch.from_numpy(np.array(t[name][1])).view(
            torch.float8_e4m3fn).to(device)

    def f32(name):
        return torch.from_numpy(np.array(t[name][1])).to(device)

    return f8("w13"), f8("w2"), f32("w13_s"), f32("w2_s")


def route(vl, p, L, bias, rsf_router):
    """vLLM's router choice (fm/router/router_factory.py l. 166-230, GroupedTopKRouter.
    _compute_routing, grouped_topk_router.py) for a model of the case's routing: DeepSeek-style
    models (groups, or an rsf in the router) are use_grouped_topk; others are not. Returns
    (weights fp32, ids int32, path name, the path's renormalisation denominator, its non-finite
    policy)."""
    import torch
    T, E, k = p["T"], p["E"], p["top_k"]
    scoring = p["score"]
    use_grouped = p["n_group"] > 1 or rsf_router != 1.0
    if use_grouped:
        degenerate = p["n_group"] <= 1 and p["topk_group"] <= 1
        handled = rsf_router == 1.0 or bias is not None
        if not (degenerate and handled):
            if E <= p["n_group"] or E % p["n_group"] != 0:
                raise Unsupported("E <= n_group or E %% n_group != 0: vLLM falls back to ungrouped "
                                  "routing (grouped_topk_router.py valid_grouping): not mapped")
            vl.router_path = "torch-grouped_topk"
            w, ids = vl.fn.grouped_topk(
                hidden_states=L, gating_output=L, topk=k, renormalize=p["renormalize"],
                num_expert_group=p["n_group"], topk_group=p["topk_group"], scoring_func=scoring,
                routed_scaling_factor=rsf_router, e_score_correction_bias=bias)
            if vl.router_path.startswith("cuda"):
                return w, ids, vl.router_path, ("sum_eps", 1e-20), "propagate"
            return w, ids, vl.router_path, ("sum_eps", 0.0), "propagate"
    # the ungrouped routers: FusedTopKBiasRouter with a bias, else FusedTopKRouter
    w = torch.empty(T, k, dtype=torch.float32, device=L.device)
    ids = torch.empty(T, k, dtype=torch.int32, device=L.device)
    tei = torch.empty(T, k, dtype=torch.int32, device=L.device)
    if scoring == "softmax":
        vl.ops.topk_softmax(w, ids, tei, L, p["renormalize"], bias)
        if bias is not None and rsf_router != 1.0:
            w *= rsf_router  # fused_topk_bias_router.py l. 216-217
        elif rsf_router != 1.0:
            raise Unsupported("FusedTopKRouter applies no rsf (router_factory.py)")
        path = "topk_softmax"
    else:
        if bias is None and rsf_router != 1.0:
            raise Unsupported("FusedTopKRouter applies no rsf (router_factory.py)")
        vl.ops.topk_sigmoid(w, ids, tei, L, p["renormalize"], bias, rsf_router)
        path = "topk_sigmoid"
    return w, ids, path, ("sum_or_one", 0.0), "zero"


def check_semantics(p, L, w_unscaled_sum, den, nonfinite, path):
    """The case's renormalisation denominator and non-finite policy against the path's: refused
    where they can differ on this case's data."""
    import torch
    case_den = p.get("renorm_denom", "sum_eps")
    case_nf = p.get("nonfinite", "propagate")
    if not bool(torch.isfinite(L.float()).all()) and case_nf != nonfinite:
        raise Unsupported("non-finite logits: vLLM's %s %s them, the case's policy is %s"
                          % (path, "zeroes" if nonfinite == "zero" else "propagates", case_nf))
    if not p["renormalize"]:
        return
    same = (case_den, p["eps"] if case_den != "sum_or_one" else 0.0) == den
    if not same and bool((w_unscaled_sum <= 1e-15).any()):
        raise Unsupported("renormalisation: vLLM's %s divides by %s, the case by %s (eps %g), and "
                          "a token's selected scores sum to %g" % (
                              path, "sum > 0 ? sum : 1" if den[0] == "sum_or_one"
                              else "sum + %g" % den[1], case_den, p["eps"],
                              float(w_unscaled_sum.min())))


def forward(vl, t, p, device, fp8=False, served=False):
    """Returns out [T, H] bf16 bits, ids [T, k] int32, weights [T, k] fp32 (numpy), and a line
    saying which path ran."""
    import numpy as np
    import torch
    refuse_unexpressible(p, t, fp8, served)
    quant = p.get("weight_format", "bf16") == "fp8_block"
    T, H, E, k = p["T"], p["H"], p["E"], p["top_k"]
    E_local, offset = p["E_local"], p["expert_offset"]

    def bf16(name):
        return torch.from_numpy(t[name][1].astype(np.int16)).view(torch.bfloat16).to(device)

    x = bf16("x")
    ldt, L = t["logits"]
    L = bf16("logits") if ldt == "BF16" else torch.from_numpy(L.copy()).to(device)
    bias = None
    if p["bias"] != "none":
        bdt, b = t["bias"]
        bias = (bf16("bias").float() if bdt == "BF16" else torch.from_numpy(b.copy()).to(device))
    rsf = 1.0 if BUG == "drop-rsf" else p["rsf"]
    rsf_router = rsf if p["rsf_site"] == "weights" else 1.0  # DeepSeek: apply_routed_scale_to_output

    vl.router_path = None
    w, ids, path, den, nonfinite = route(vl, p, L, bias, rsf_router)
    check_semantics(p, L, _selected_score_sum(p, L, ids), den, nonfinite, path)
    ids = ids.to(torch.int32).contiguous()
    w = w.to(torch.float32).contiguous()

    # experts: TritonExperts.apply (fm/experts/triton_moe.py l. 257-640), bf16, no LoRA, no hook;
    # fp8_block: fused_experts_impl's FP8 block-scale flow (fm/fused_moe.py l. 1778-1845)
    block_shape = None
    if quant:
        block_shape = [int(p.get("block_n", "128")) or 128, int(p.get("block_k", "128")) or 128]
        w13, w2, w13_s, w2_s = fp8_tensors(t, device, E_local)
    else:
        w13 = bf16("w13").contiguous()
        w2 = bf16("w2").contiguous()
    expert_map = None
    if E_local != E:
        expert_map = torch.full((E,), -1, dtype=torch.int32, device=device)
        expert_map[offset:offset + E_local] = torch.arange(E_local, dtype=torch.int32,
                                                           device=device)
    N = w13.shape[1]
    config, cfg_from = vl.config(w13.shape, w2.shape, k, T, block_shape)
    if quant and config["BLOCK_SIZE_K"] < block_shape[1]:
        raise Unsupported("the %s config's BLOCK_SIZE_K %d splits the scale group of %d (each tile "
                          "scaled and added on its own: not modelled)"
                          % (cfg_from, config["BLOCK_SIZE_K"], block_shape[1]))
    import triton.language as tl
    cache1 = torch.empty(T, k, N, dtype=torch.bfloat16, device=device)
    cache2 = torch.empty(T * k, N // 2, dtype=torch.bfloat16, device=device)
    cache3 = torch.empty(T, k, H, dtype=torch.bfloat16, device=device)
    num_align = w13.shape[0] if expert_map is None else E
    sorted_ids, expert_ids, ntpp = vl.fn.prepare(
        ids, config, T, k, num_align, expert_map, use_int8_w8a16=False, use_int4_w4a16=False,
        block_shape=block_shape, ignore_invalid_experts=expert_map is not None,
        weights_host_resident=False)
    common = dict(compute_type=tl.bfloat16, use_fp8_w8a8=quant, use_int8_w8a8=False,
                  use_int8_w8a16=False, use_int4_w4a16=False, per_channel_quant=False,
                  block_shape=block_shape, B_bias=None)
    a1, a1_s, s13, s2 = x, None, None, None
    if quant:
        # moe_kernel_quantize_input -> _fp8_quantize (fm/utils.py l. 326-351, 464-481) ->
        # per_token_group_quant_fp8(A, block_k), use_ue8m0 = is_deep_gemm_e8m0_used(): the
        # case's scale_format says which (ue8m0: DeepGEMM installed with VLLM_USE_DEEP_GEMM_E8M0)
        ue8m0 = p.get("scale_format", "f32") == "ue8m0"
        a1, a1_s = vl.ops.per_token_group_fp8_quant(x, block_shape[1], 1e-10, ue8m0)
        s13, s2 = w13_s, w2_s
    vl.fn.invoke(a1, w13, cache1, a1_s, s13, None, sorted_ids, expert_ids, ntpp, False, k, config,
                 **common)
    if quant and served:  # TritonExperts.apply l. 525-540: the fused op on the bf16 cache1
        a2, a2_s = vl.ops.silu_and_mul_per_block_quant(cache1.view(-1, N), 128)
    else:
        vl.ops.silu_and_mul(cache2, cache1.view(-1, N))
        a2, a2_s = cache2, None
    if quant and not served:  # fm/fused_moe.py l. 1828-1834: the bf16 activation quantized
        a2, a2_s = vl.ops.per_token_group_fp8_quant(cache2, block_shape[1], 1e-10, ue8m0)
    vl.fn.invoke(a2, w2, cache3, a2_s, s2, w, sorted_ids, expert_ids, ntpp, True, 1, config,
                 **common)
    out = torch.empty(T, H, dtype=torch.bfloat16, device=device)
    if expert_map is not None:
        vl.ops.moe_sum(cache3, out, ids, expert_map)
    else:
        vl.ops.moe_sum(cache3, out)
    if p["rsf_site"] == "output" and rsf != 1.0:
        out *= rsf  # fm/runner/moe_runner.py:_maybe_apply_routed_scale_to_output l. 416-417
    what = "router %s, config %s %s%s" % (path, cfg_from, {kk: config[kk] for kk in sorted(config)},
                                          (", fp8 block %s%s" % (block_shape, ", fused "
                                           "silu_and_mul_per_block_quant" if served else ""))
                                          if quant else "")
    return (out.view(torch.int16).cpu().numpy().view(np.uint16), ids.cpu().numpy(),
            w.cpu().numpy(), what)


def _selected_score_sum(p, L, ids):
    """The fp32 sum of the selected unbiased scores (what a renormalising router divides by)."""
    import torch
    Lf = L.float()
    s = torch.softmax(Lf, dim=1) if p["score"] == "softmax" else torch.sigmoid(Lf)
    s = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
    return torch.gather(s, 1, ids.long()).sum(dim=1)


# ---- the exec protocol (docs/files.md) ----

def routed_forward(vl, router, contract, device, fp8=False, served=False):
    """The adapter's forward for the exec protocol: vLLM's path for the case, refused where vLLM
    routes it through the other router than --router's (each router has its own contract)."""
    def fwd(t, meta):
        out, ids, w, what = forward(vl, t, params(meta), device, fp8, served)
        if what.startswith("router torch") != (router == "torch"):
            raise Unsupported("vLLM routes this case through its %s router; the adapter runs with "
                              "--router %s (contract %s)" % (what.split(",")[0][len("router "):],
                                                             router, contract))
        return out, ids, w, what
    return fwd


def main(argv):
    src, router, device, cpu_contract, caching, raw, fp8 = None, "cuda", None, None, True, False, False
    served = False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--vllm-src" and args:
            src = args.pop(0)
        elif a == "--router" and args and args[0] in ("cuda", "torch"):
            router = args.pop(0)
        elif a == "--device" and args and args[0] in ("cuda", "cpu"):
            device = args.pop(0)
        elif a == "--cpu-contract" and args:
            cpu_contract = args.pop(0)
        elif a == "--no-cache":
            caching = False
        elif a == "--raw-interpreter":
            raw = True
        elif a == "--fp8":
            fp8 = True
        elif a == "--served":
            served = True
        else:
            print(__doc__.split("\n\n")[0], file=sys.stderr)
            print("usage: vllm_fused_moe.py [--vllm-src DIR] [--router cuda|torch] "
                  "[--device cuda|cpu] [--cpu-contract NAME] [--no-cache] [--raw-interpreter] "
                  "[--fp8 [--served]]", file=sys.stderr)
            return 2
    if served and not fp8:
        log("--served runs with --fp8 only (it is vLLM's modular FP8 block-scale path)")
        return 2
    if fp8 and router != "cuda":
        log("--fp8 runs with --router cuda only (vllm-0.33-triton-fp8-sm90 is the CUDA router "
            "path's contract)")
        return 2
    if BUG not in ("", "drop-rsf"):
        log("unknown VLLM_ADAPTER_BUG %r (known: drop-rsf)" % BUG)
        return 2
    device = choose_device(device, log)
    if device is None:
        return 2
    try:
        vl = Vllm(src, device, raw)
    except (RuntimeError, ImportError, OSError, SyntaxError) as e:
        log("cannot load vLLM's functions: %s" % e)
        return 2
    contract = ("vllm-0.33-triton-sm90-torch-router" if router == "torch"
                else "vllm-0.33-triton-fp8-served-sm90" if served
                else "vllm-0.33-triton-fp8-sm90" if fp8 else "vllm-0.33-triton-sm90")
    if device == "cpu" and cpu_contract:
        contract = cpu_contract
    log("%s on %s (%s), router %s, contract %s%s" % (
        vl.origin, device, "Triton interpreter" if device == "cpu" else "Triton", router,
        contract, ", BUG " + BUG if BUG else ""))
    return serve(ExecAdapter("vllm-0.33.0-fused-moe", contract, caching,
                             routed_forward(vl, router, contract, device, fp8, served), log,
                             level=3 if fp8 else 2), log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
