#!/usr/bin/env python3
"""sglang_fused_moe.py: a moefuzz exec adapter that runs SGLang 0.5.23's bf16 Triton fused MoE.

SGLang's own Triton kernels (`fused_moe_kernel`, the router `_router_triton_kernel`, the combine
`_moe_sum_reduce_kernel`, the small-batch `_moe_align_small_numel_kernel`) and the Python that
launches and chooses them (`fused_experts_impl` and its sequence, `try_get_optimal_moe_config`,
`fused_topk`, `biased_grouped_topk_gpu`, `moe_fused_gate`, `moe_align_block_size`) run
unchanged: they are read at run time from the user's copy of SGLang's sources (the unpacked
sglang 0.5.23 wheel, --sglang-src DIR) by AST extraction, never copied. The CUDA ops this path
calls that are not Triton (the JIT `silu_and_mul`, the JIT `moe_align_block_size`) are computed
here in torch as their sources in the same wheel define them (file and line cited at each op);
sgl_kernel's `moe_sum_reduce`, whose source is not in the wheel, is refused, not guessed.

    moefuzz check --backend \
      "exec:python3 python/moefuzz/adapters/sglang_fused_moe.py --sglang-src DIR" CASES

Needs torch, triton and numpy (no sglang package: its import graph is not loaded). On a CUDA
device the kernels are compiled by Triton; without CUDA they run on Triton's interpreter
(TRITON_INTERPRET=1), patched as for the vLLM adapter (_exec_common.patch_interpreter). Both
declare `sglang-0.5-triton-sm90` (docs/error-model.md).

What runs is SGLang on sm_90 as a model makes the call (docs/notes/sglang-adapter.md):
  - softmax routing without bias or groups (Mixtral, Qwen3, OLMoE...): select_experts ->
    fused_topk -> moe_fused_gate (the Triton router), renormalised by sum > 0 ? sum : 1;
  - sigmoid routing with a bias and groups (DeepSeek-V3): select_experts -> biased_grouped_topk_gpu
    with SGLANG_OPT_USE_JIT_KERNEL_GROUPED_TOPK=1 (the Triton router with top-2 group sums).
    Without it, a CUDA SGLang with flashinfer installed takes FlashInfer's fused_topk_deepseek
    for DeepSeek-V3's shape: not modelled here;
  - the routed scaling factor on the output, in moe_combine_topk (SGLang's FusedMoE passes it to
    the runner; deepseek_v2.py multiplies again only off CUDA).
Everything else is `unsupported` with the reason.

Options:
  --sglang-src DIR     SGLang 0.5.23's unpacked wheel (or the files listed in SGLANG_FILES)
  --device cuda|cpu    default: cuda when torch sees one
  --cpu-contract NAME  the contract declared on the CPU (default sglang-0.5-triton-sm90)
  --no-cache           do not announce cache=weights
Environment: SGLANG_ADAPTER_BUG=drop-rsf runs SGLang with routed_scaling_factor None wherever the
case has another (the class of vLLM PR #43769: a caller that does not pass the factor). The path
each case ran (router, combine, Triton config) is logged to stderr.
"""
import contextlib
import functools
import json
import logging
import os
import sys
import types
from typing import Any, Dict, List, Optional, Tuple

try:
    from ._exec_common import (Unsupported, choose_device, load_functions, patch_interpreter,
                               ExecAdapter, serve)
except ImportError:  # run as a script: the sibling module
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _exec_common import (Unsupported, choose_device, load_functions, patch_interpreter,
                              ExecAdapter, serve)

PROJECT = "SGLang 0.5.23"
# SGLang's files this adapter reads (paths inside --sglang-src); the GPU run carries only these
# (and, for the tuned Triton configs of the card, TRITON_UTILS + "configs/")
OPS = "sglang/kernels/ops/moe/"
TRITON_UTILS = "sglang/srt/layers/moe/moe_runner/triton_utils/"
SGLANG_FILES = {
    "kernels": OPS + "fused_moe_triton_kernels.py",
    "gate": OPS + "moe_fused_gate.py",
    "radix": OPS + "moe_route_radix.py",
    "small_align": OPS + "moe_align_small_numel.py",
    "topk": "sglang/srt/layers/moe/topk.py",
    "experts": TRITON_UTILS + "fused_moe.py",
    "config": TRITON_UTILS + "fused_moe_triton_config.py",
    "align": TRITON_UTILS + "moe_align_block_size.py",
}

BUG = os.environ.get("SGLANG_ADAPTER_BUG", "")


def log(msg):
    print("sglang_fused_moe: " + msg, file=sys.stderr, flush=True)


class Env:
    """One of sglang/srt/environ.py's variables: .get() returns the value this adapter models."""

    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


# sglang/srt/environ.py: the variables the loaded functions read, at the values modelled here.
# SGLANG_OPT_USE_JIT_KERNEL_GROUPED_TOPK=1 sends grouped biased routing to the Triton router
# (topk.py l. 1984-2021) before FlashInfer's fused_topk_deepseek (l. 2021-2077).
ENVS = types.SimpleNamespace(
    SGLANG_OPT_USE_JIT_KERNEL_GROUPED_TOPK=Env(True),
    SGLANG_OPT_SM120_MTP_ROUTER_TOP22=Env(False),
    SGLANG_USE_AITER=Env(False),
)


def install_stub_modules(modules):
    """The few `from sglang... import name` statements inside the loaded function bodies find
    these stand-in modules (sys.modules), so no part of the sglang package is imported."""
    for name, attrs in modules.items():
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        for k, v in attrs.items():
            setattr(sys.modules[name], k, v)


class Sglang:
    """SGLang's functions for this path, loaded from --sglang-src."""

    def __init__(self, src, device):
        import torch
        import torch.nn.functional as F
        import triton
        import triton.language as tl
        if device == "cpu":
            patch_interpreter()
        self.device = device
        self.path = {}
        for f in SGLANG_FILES.values():
            if not os.path.isfile(os.path.join(src, f)):
                raise RuntimeError("--sglang-src %s: %s is missing (needed: %s)"
                                   % (src, f, ", ".join(SGLANG_FILES.values())))

        def path(key):
            return os.path.realpath(os.path.join(src, SGLANG_FILES[key]))

        def load(key, names, ns, assignments=()):
            load_functions(path(key), names, ns, assignments, project=PROJECT)
            return ns

        # PDL (programmatic dependent launch, sm_90+) orders launches and changes no arithmetic;
        # SGLang's dispatch sees sm_90 (pdl True) on both devices, the interpreter cannot launch
        # with it (sglang/kernels/jit/utils/arch.py l. 195-198: major >= 9)
        launch_pdl = device == "cuda"
        common = {"torch": torch, "triton": triton, "tl": tl, "F": F, "Optional": Optional,
                  "Dict": Dict, "List": List, "Tuple": Tuple, "Any": Any,
                  "functools": functools, "os": os, "json": json,
                  "logger": logging.getLogger("sglang_fused_moe"), "envs": ENVS,
                  "_is_cuda": True, "_is_hip": False, "_is_xpu": False, "_is_musa": False,
                  "_is_cpu": False, "_use_aiter": False, "_is_npu": False}

        # ---- the Triton kernels and their launchers (fused_moe_triton_kernels.py) ----
        try:
            from triton.tools.tensor_descriptor import TensorDescriptor
            has_td = True
        except ImportError:
            TensorDescriptor, has_td = None, False
        kn = dict(common, is_arch_support_pdl=lambda: launch_pdl, padding_size=0,
                  _support_tensor_descriptor=has_td, TensorDescriptor=TensorDescriptor,
                  is_batch_invariant_mode_enabled=lambda: False,
                  is_sm90_supported=lambda: True, __file__=path("kernels"))
        load("kernels", ["write_zeros_to_output", "fused_moe_kernel", "should_enable_swap_ab",
                         "support_tensor_descriptor", "invoke_fused_moe_kernel",
                         "_moe_sum_reduce_kernel", "moe_sum_reduce_triton"], kn)

        # ---- config choice (fused_moe_triton_config.py) ----
        exec_ctx = types.SimpleNamespace(
            moe=types.SimpleNamespace(enable_fused_moe_sum_all_reduce=False),
            deterministic=types.SimpleNamespace(enable_deterministic_inference=False))
        cn = dict(common, get_exec=lambda: exec_ctx, __file__=path("config"),
                  get_device_name=lambda device_id=0: (torch.cuda.get_device_name(device_id)
                                                       if device == "cuda" else "cpu"))
        load("config", ["get_config_file_name", "get_moe_configs", "get_default_config",
                        "try_get_optimal_moe_config", "get_config_dtype_str"], cn)
        install_stub_modules({
            "sglang.srt.layers.moe.moe_runner.triton_utils": {"get_config": lambda: None},
            "sglang.srt.environ": {"envs": ENVS}})
        self.config_used = None
        choose = cn["try_get_optimal_moe_config"]

        def try_get_optimal_moe_config(*a, **k):
            config, (down, max_m) = choose(*a, **k)
            for c in (config, down):
                if c is not None and c.get("USE_TMA"):
                    raise Unsupported("the tuned config asks for USE_TMA (tensor-descriptor "
                                      "loads): that path is not run by this adapter")
            self.config_used = (dict(config), down and dict(down))
            return config, (down, max_m)

        # ---- alignment (moe_align_block_size.py; the small-numel Triton kernel; the JIT op) ----
        sn = dict(common, is_arch_support_pdl=lambda: launch_pdl)
        load("small_align", ["_moe_align_small_numel_kernel", "moe_align_small_numel"], sn,
             ["SMALL_NUMEL_LIMIT"])
        an = dict(common, _SGLANG_EXPERIMENTAL_LORA_OPTI=False,
                  sgl_moe_align_block_size=moe_align_block_size_op,
                  moe_align_small_numel=sn["moe_align_small_numel"],
                  SMALL_NUMEL_LIMIT=sn["SMALL_NUMEL_LIMIT"])
        load("align", ["moe_align_block_size"], an, ["_CUDA_SMALL_BATCH_MAX_BUCKETS"])

        # ---- the expert sequence and the combine (triton_utils/fused_moe.py) ----
        en = dict(common, padding_size=0, get_exec=lambda: exec_ctx,
                  get_parallel=lambda: types.SimpleNamespace(tp_group=None),
                  use_symmetric_memory=lambda group, disabled=True: contextlib.nullcontext(),
                  is_allocation_symmetric=lambda: False, is_arch_support_pdl=lambda: True,
                  is_batch_invariant_mode_enabled=lambda: False,
                  invoke_fused_moe_kernel=kn["invoke_fused_moe_kernel"],
                  moe_sum_reduce_triton=kn["moe_sum_reduce_triton"],
                  support_tensor_descriptor=kn["support_tensor_descriptor"],
                  try_get_optimal_moe_config=try_get_optimal_moe_config,
                  get_config_dtype_str=cn["get_config_dtype_str"],
                  moe_align_block_size=an["moe_align_block_size"],
                  silu_and_mul=self.silu_and_mul, moe_sum_reduce=self.moe_sum_reduce,
                  moe_sum_reduce_torch_compile=self.not_on_sm90,
                  _has_vllm_ops=False, __file__=path("experts"))
        load("experts", ["_activation_row_filter", "_use_moe_sum_reduce_torch_compile",
                         "_moe_support_tma", "_prepare_fused_moe_run",
                         "_fused_moe_kernel_sequence", "moe_combine_topk",
                         "fused_experts_impl"], en)
        self.fused_experts_impl = en["fused_experts_impl"]

        # ---- the routers (moe_fused_gate.py, moe_route_radix.py, topk.py) ----
        rn = dict(common)
        load("radix", ["covered"], rn, ["_NUM_EXPERTS", "_TOPK"])

        def route_radix(*a, **k):
            raise Unsupported("moe_fused_gate takes its native-CUDA radix router (Kimi-K3's "
                              "896 experts, top-16): not modelled")
        gn = dict(common, is_arch_support_pdl=lambda: launch_pdl,
                  get_jit_cuda_arch=lambda: types.SimpleNamespace(major=9, minor=0),
                  moe_route_radix=types.SimpleNamespace(covered=rn["covered"],
                                                        route_radix=route_radix))
        from triton.language.extra import libdevice
        gn["libdevice"] = libdevice
        load("gate", ["_router_triton_kernel", "_dummy_i32", "moe_fused_gate"], gn,
             ["_SCORING_FUNC_MAP", "_DUMMY_I32"])
        install_stub_modules({"sglang.kernels.ops.moe.moe_fused_gate":
                              {"moe_fused_gate": gn["moe_fused_gate"]}})
        tn = dict(common, fused_topk_deepseek=None, topk_softmax=self.not_on_sm90,
                  topk_sigmoid=self.not_on_sm90, math=__import__("math"))
        load("topk", ["_use_rocm_triton_softmax_topk", "fused_topk", "is_power_of_two",
                      "fused_shared_expert_weight", "biased_grouped_topk_gpu"], tn,
             ["_RENORMALIZE_SUM_EPSILON"])
        self.fused_topk = tn["fused_topk"]
        self.biased_grouped_topk_gpu = tn["biased_grouped_topk_gpu"]
        self.origin = "SGLang sources in %s" % src
        self.combine = None

    # ---- SGLang's CUDA ops of this path, in torch, as their sources compute them ----

    def silu_and_mul(self, x, out, **row_filter):
        """sglang/kernels/jit/csrc/elementwise/activation.cuh: apply_activation_f32<kSiLU> l.
        26-28 `x / (1.0f + expf(-x))` in fp32; act_and_mul_kernel without kRoundActivation l.
        112-116: out = (T)(silu(gate) * up), one rounding to bf16 (silu not rounded first).
        Built with --use_fast_math (sglang/kernels/jit/utils/arch.py l. 201-204, activation.py
        l. 22): __expf and an approximate division, subnormals flushed; computed here with
        torch's exp and IEEE division, inside the contract's fast bounds."""
        import torch
        if row_filter:
            raise Unsupported("silu_and_mul with a row filter (expert parallel or TMA): not "
                              "modelled")
        d = x.shape[-1] // 2
        g, u = x[..., :d].float(), x[..., d:].float()
        s = g / (1.0 + torch.exp(-g))
        out.copy_((s * u).to(out.dtype))
        return out

    def moe_sum_reduce(self, x, out, routed_scaling_factor):
        raise Unsupported("the combine takes sgl_kernel's moe_sum_reduce (T > 32 with top-k > 2 "
                          "or an rsf, triton_utils/fused_moe.py l. 1006-1024): its CUDA source "
                          "is not in the sglang 0.5.23 wheel, so it is not modelled")

    def not_on_sm90(self, *a, **k):
        raise Unsupported("a path SGLang does not take on sm_90 CUDA")


def moe_align_block_size_op(topk_ids, num_buckets, block_size, sorted_ids, expert_ids,
                            num_tokens_post_pad, cumsum_buffer, pad_sorted_token_ids,
                            ignore_invalid_expert=False):
    """The JIT moe_align_block_size (sglang/kernels/jit/csrc/moe/moe_align_kernel.cu) under the
    "+1 offset" convention: bucket = id + 1 (ids -1 in bucket 0), num_buckets = E + 1; each
    bucket's slots padded to a multiple of block_size (l. 129-144); sorted_token_ids padded with
    numel (l. 98-108); expert_ids per block = bucket - 1 (l. 276, 370), the rest -1 (l. 280,
    375). The order of the slots inside a bucket's blocks is the kernel's thread order; the
    values computed do not depend on it."""
    import torch
    if ignore_invalid_expert:
        raise Unsupported("moe_align_block_size with ignore_invalid_expert: not modelled")
    flat = topk_ids.reshape(-1).long()
    numel = flat.numel()
    if pad_sorted_token_ids:
        sorted_ids.fill_(numel)
    expert_ids.fill_(-1)
    pos = blk = 0
    for b in range(num_buckets):
        slots = torch.nonzero(flat + 1 == b).reshape(-1)
        n = slots.numel()
        if n == 0:
            continue
        sorted_ids[pos:pos + n] = slots.to(sorted_ids.dtype)
        padded = (n + block_size - 1) // block_size * block_size
        expert_ids[blk:blk + padded // block_size] = b - 1
        pos += padded
        blk += padded // block_size
    num_tokens_post_pad[0] = pos


# ---- one case: SGLang's call as an SGLang model makes it ----

def params(meta):
    p = dict(meta)
    for k in ("T", "H", "I", "E", "E_local", "expert_offset", "top_k", "n_group", "topk_group"):
        p[k] = int(meta[k])
    p["rsf"] = float(meta["rsf"])
    p["renormalize"] = meta["renormalize"] == "true"
    p["eps"] = float(meta["eps"])
    return p


def refuse_unexpressible(p):
    """What SGLang 0.5.23's bf16 Triton MoE path cannot express, or this adapter does not map."""
    if p.get("weight_format", "bf16") != "bf16":
        raise Unsupported("weight_format %s: this adapter maps SGLang's bf16 path only"
                          % p["weight_format"])
    if p.get("n_shared", "0") not in ("0", ""):
        raise Unsupported("shared experts: SGLang's fused shared slots are not mapped")
    if p.get("activation", "silu_glu") != "silu_glu":
        raise Unsupported("activation %s: this adapter maps silu_and_mul only" % p["activation"])
    if p.get("layout", "gate_up") != "gate_up":
        raise Unsupported("layout %s: SGLang's w13 holds gate rows then up rows" % p["layout"])
    if p.get("expert_bias", "none") != "none":
        raise Unsupported("expert biases: not mapped by this adapter")
    if p["E_local"] != p["E"]:
        raise Unsupported("expert parallel (E_local < E): SGLang's EP id mapping and expert "
                          "filter are not mapped by this adapter")
    if p["rsf"] != 1.0 and p["rsf_site"] != "output":
        raise Unsupported("rsf in the weights: SGLang's bf16 Triton MoE applies the routed "
                          "scaling factor to the output sum (moe_combine_topk)")
    softmax_plain = p["score"] == "softmax" and p["bias"] == "none" and p["n_group"] <= 1
    grouped_biased = (p["score"] == "sigmoid" and p["bias"] != "none" and p["n_group"] > 1
                      and p.get("group_rule", "top2_sum") == "top2_sum")
    if not (softmax_plain or grouped_biased):
        raise Unsupported("routing %s, bias %s, %d group(s), rule %s: the adapter maps SGLang's "
                          "softmax top-k (fused_topk) and grouped biased sigmoid "
                          "(biased_grouped_topk_gpu) only" % (
                              p["score"], p["bias"], p["n_group"], p.get("group_rule")))


def check_semantics(p, L, bias, ids):
    """Where the case's semantics and SGLang's Triton router can differ on this case's data:
    non-finite logits (the router maps NaN keys to -1e30, moe_fused_gate.py), a renormalisation
    denominator that differs from the router's `sum > 0 ? sum : 1` by more than 2^-40 of it,
    and a group whose top key is repeated (the router's second group key skips every copy of
    the first, `vals >= top1`, where a top-2 sum keeps both)."""
    import torch
    if not bool(torch.isfinite(L.float()).all()):
        raise Unsupported("non-finite logits: SGLang's Triton router ranks NaN keys as -1e30; "
                          "not mapped")
    Lf = L.float()
    s = torch.softmax(Lf, dim=1) if p["score"] == "softmax" else torch.sigmoid(Lf)
    if p["renormalize"]:
        den = p.get("renorm_denom", "sum_eps")
        total = torch.gather(s, 1, ids.long()).sum(dim=1)
        if den != "sum_or_one":
            eps = p["eps"] if den == "sum_eps" else 0.0
            if den not in ("sum_eps",) or bool((eps > total * 2.0 ** -40).any()) or \
                    bool((total <= 0).any()):
                raise Unsupported("renormalisation: SGLang's router divides by sum > 0 ? sum : 1,"
                                  " the case by %s (eps %g), and a token's selected scores sum "
                                  "to %g" % (den, p["eps"], float(total.min())))
    if p["n_group"] > 1:
        key = (s + bias.float()[None, :]).view(p["T"], p["n_group"], -1)
        top2 = torch.topk(key, 2, dim=2).values
        if bool((top2[:, :, 0] == top2[:, :, 1]).any()):
            raise Unsupported("a group's top key is repeated: SGLang's Triton router drops every "
                              "copy of it from the group score (moe_fused_gate.py, "
                              "`vals >= top1`); the case sums the top two")


def forward(sg, t, p, device):
    """Returns out [T, H] bf16 bits, ids [T, k] int32, weights [T, k] fp32 (numpy), and a line
    saying which path ran."""
    import numpy as np
    import torch
    refuse_unexpressible(p)
    k = p["top_k"]

    def bf16(name):
        return torch.from_numpy(t[name][1].astype(np.int16)).view(torch.bfloat16).to(device)

    x = bf16("x").contiguous()
    ldt, L = t["logits"]
    L = bf16("logits") if ldt == "BF16" else torch.from_numpy(L.copy()).to(device)
    rsf = None if BUG == "drop-rsf" or p["rsf"] == 1.0 else p["rsf"]
    # select_experts (topk.py l. 2934-2960, 3060-3090): grouped biased -> biased_grouped_topk;
    # otherwise fused_topk. apply_routed_scaling_factor_on_output is False for the bf16 Triton
    # runner (fused_moe_triton/layer.py l. 109-112, 615-617), so the router never applies rsf.
    if p["n_group"] > 1:
        bdt, b = t["bias"]
        bias = bf16("bias").float() if bdt == "BF16" else torch.from_numpy(b.copy()).to(device)
        w, ids = sg.biased_grouped_topk_gpu(
            hidden_states=x, gating_output=L, correction_bias=bias, topk=k,
            renormalize=p["renormalize"], num_expert_group=p["n_group"],
            topk_group=p["topk_group"], num_fused_shared_experts=0, routed_scaling_factor=rsf,
            apply_routed_scaling_factor_on_output=False)
        router = "biased_grouped_topk_gpu -> moe_fused_gate (Triton, grouped)"
    else:
        bias = None
        w, ids = sg.fused_topk(hidden_states=x, gating_output=L, topk=k,
                               renormalize=p["renormalize"], correction_bias=None,
                               scoring_func="softmax", routed_scaling_factor=rsf,
                               apply_routed_scaling_factor_on_output=False)
        router = "fused_topk -> moe_fused_gate (Triton, softmax)"
    check_semantics(p, L, bias, ids)
    w13, w2 = bf16("w13").contiguous(), bf16("w2").contiguous()
    sg.config_used = None
    # FusedMoE -> TritonRunnerCore -> fused_experts (triton_utils/fused_moe.py l. 304-400):
    # outplace, activation silu, gated, filter_expert False when no expert is filtered (EP off)
    out = sg.fused_experts_impl(x, w13, w2, w, ids, inplace=False, activation="silu",
                                is_gated=True, routed_scaling_factor=rsf, filter_expert=False)
    if k == 1 and rsf is None:
        combine = "GEMM2 writes the output"
    elif k == 2 and rsf is None:
        combine = "torch.add of the two bf16 rows"
    else:
        combine = "moe_sum_reduce_triton (fp32 sum * rsf, one bf16 rounding)"
    up, down = sg.config_used or (None, None)
    what = "router %s, combine %s, config %s%s" % (
        router, combine, up, "" if down is None else ", down config %s" % down)
    return (out.view(torch.int16).cpu().numpy().view(np.uint16), ids.to(torch.int32).cpu().numpy(),
            w.to(torch.float32).cpu().numpy(), what)


# ---- the exec protocol (docs/files.md) ----

def main(argv):
    src, device, cpu_contract, caching = None, None, None, True
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--sglang-src" and args:
            src = args.pop(0)
        elif a == "--device" and args and args[0] in ("cuda", "cpu"):
            device = args.pop(0)
        elif a == "--cpu-contract" and args:
            cpu_contract = args.pop(0)
        elif a == "--no-cache":
            caching = False
        else:
            print(__doc__.split("\n\n")[0], file=sys.stderr)
            print("usage: sglang_fused_moe.py --sglang-src DIR [--device cuda|cpu] "
                  "[--cpu-contract NAME] [--no-cache]", file=sys.stderr)
            return 2
    if not src:
        log("--sglang-src DIR is required (SGLang 0.5.23's unpacked wheel)")
        return 2
    if BUG not in ("", "drop-rsf"):
        log("unknown SGLANG_ADAPTER_BUG %r (known: drop-rsf)" % BUG)
        return 2
    device = choose_device(device, log)
    if device is None:
        return 2
    try:
        sg = Sglang(src, device)
    except (RuntimeError, ImportError, OSError, SyntaxError) as e:
        log("cannot load SGLang's functions: %s" % e)
        return 2
    contract = "sglang-0.5-triton-sm90"
    if device == "cpu" and cpu_contract:
        contract = cpu_contract
    log("%s on %s (%s), contract %s%s" % (
        sg.origin, device, "Triton interpreter" if device == "cpu" else "Triton", contract,
        ", BUG " + BUG if BUG else ""))
    return serve(ExecAdapter("sglang-0.5.23-fused-moe", contract, caching,
                             lambda t, meta: forward(sg, t, params(meta), device), log), log)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
