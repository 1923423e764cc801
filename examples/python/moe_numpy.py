#!/usr/bin/env python3
"""moe_numpy.py: an example moefuzz adapter, a fused-MoE forward in numpy.

Replace `moe_forward` with a call into your own kernel (PyTorch, Triton, CUDA via ctypes...)
and moefuzz checks it against its exact reference. Two ways to run it:

  moefuzz check --backend 'exec:/usr/bin/python3 examples/python/moe_numpy.py' corpus/seeds
      a long-lived process speaking the exec protocol on stdin/stdout (docs/files.md):
      "hello 3" -> "hello NAME protocol=3 level=2 contract=C routing=1 cache=weights";
      "run IN OUT" -> "ok" | "unsupported REASON" | "error MESSAGE"; "quit". With cache=weights
      it keeps the expert weights of the last case that carried them (converted to float32), and
      moefuzz leaves them out of the next case files while they stay the same.

  moefuzz export CASES --out cases/ && /usr/bin/python3 moe_numpy.py cases/ && moefuzz verify cases/
      batch over files: NAME.safetensors in, NAME.out.safetensors out (exit 2 when DIR has none).

/usr/bin/python3 is Debian's Python, to which scripts/setup.sh gives numpy; any Python with
numpy will do.

Options:
  --mode any-order              fp32 GEMMs, activation rounded to bf16, fp32 combine (default)
  --mode vllm-triton            as vLLM 0.33's Triton fused_moe: gate/up, silu(g), each w*y and an
                                output-site rsf's product rounded to bf16
  --mode flashinfer-trtllm-bf16 as FlashInfer 0.7's trtllm-gen bf16 MoE: tanh-form sigmoid, the
                                routing weights and each expert output rounded to bf16
  --method NAME                 declare a routing method (moefuzz methods); moefuzz then applies
                                it to every case, and this adapter checks that it did
  --no-cache                    do not announce cache=weights: every case file carries its weights
The mode is also the contract declared in the hello line. Diagnostics go to stderr: stdout
belongs to the protocol.

Only numpy is needed; the safetensors files are read and written by the ten lines below.
MOE_NUMPY_BUG (for moefuzz's own tests) makes it wrong on purpose: drop-rsf (ignores the routed
scaling factor), crash (SIGSEGV on single-token cases), hang (sleeps on single-token cases),
stale-weights (keeps the first weights it was sent and ignores later ones). MOE_NUMPY_STATS=1
makes it print, when it exits, how many case files it completed from its weight cache.
"""
import json
import os
import signal
import struct
import sys
import time

import numpy as np

# ---- safetensors: u64 little-endian header length, JSON header, data ----

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    dtypes = {"BF16": "<u2", "F32": "<f4", "I32": "<i4", "F8_E4M3": "u1", "U8": "u1"}  # e4m3, U8 (MXFP4): raw codes
    tensors = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        raw = np.frombuffer(data, dtypes[t["dtype"]], (end - begin) // np.dtype(dtypes[t["dtype"]]).itemsize,
                            8 + n + begin)
        arr = raw.reshape(t["shape"])
        tensors[name] = bf16_to_f32(arr) if t["dtype"] == "BF16" else arr
    return tensors, meta


def write_safetensors(path, tensors, meta):
    """tensors: name -> (dtype name, numpy array already in that storage type)"""
    header, blobs, offset = {"__metadata__": meta}, [], 0
    for name, (dtype, arr) in tensors.items():
        blob = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".tmp", path)

# ---- bf16 ----

def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """round to nearest even, as bf16 bit patterns; NaN stays a (quiet) NaN"""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def round_bf16(x):
    return bf16_to_f32(f32_to_bf16(x))

# ---- the MoE forward (replace this with your kernel) ----

try:  # in moefuzz's Python package, a case the forward refuses is unsupported, not an error
    from moefuzz import Unsupported as Refused
except ImportError:  # the exec adapter needs numpy only: run_case asks refusal() first
    class Refused(Exception):
        pass

def refusal(meta):
    """Why moe_forward does not handle a case of these parameters (the case file's metadata, or
    a moefuzz KernelCall's params), or None: it implements case format v2 up to ABI level 2."""
    if meta.get("activation") not in ("silu_glu", "swiglu_oai", "silu_clamp", "silu_clamp_after"):
        return "activation %s" % meta.get("activation")
    # the parameters of ABI levels 3 to 8 (kernel_abi.h) are not implemented
    if meta.get("weight_format", "bf16") != "bf16":
        return "weight_format %s: not implemented (ABI level 2)" % meta["weight_format"]
    if meta.get("n_shared", "0") not in ("0", ""):
        return "n_shared %s: shared experts not implemented (ABI level 2)" % meta["n_shared"]
    if meta.get("score") == "none" or meta.get("weight_on_input", "0") not in ("0", ""):
        return "score %s, weight_on_input %s: routing variants not implemented (ABI level 2)" % (
            meta.get("score"), meta.get("weight_on_input", "0"))
    if meta.get("preroute", "none") not in ("none", ""):
        return "preroute %s: pre-routed input not implemented (ABI level 2)" % meta["preroute"]
    if meta.get("placement", "contiguous") not in ("contiguous", ""):
        return "placement %s: expert maps not implemented (ABI level 2)" % meta["placement"]
    if meta.get("tp_size", "0") not in ("0", ""):
        return "tp_size %s: tensor-parallel shards not implemented (ABI level 2)" % meta["tp_size"]
    return None


def moe_forward(t, meta, mode, bug):
    """t: tensors of the case file; meta: its parameters (strings). Returns out [T,H] as bf16
    bits, topk_ids [T,k] int32, topk_weights [T,k] float32. A case it does not handle raises
    Refused, an exception with refusal(meta)'s reason (moefuzz.Unsupported when moefuzz is
    importable: moefuzz.check then counts the case unsupported)."""
    why = refusal(meta)
    if why:
        raise Refused(why)
    f32 = np.float32
    T, H, I, E = (int(meta[k]) for k in ("T", "H", "I", "E"))
    E_local, offset, k = int(meta["E_local"]), int(meta["expert_offset"]), int(meta["top_k"])
    n_group, topk_group = int(meta["n_group"]), int(meta["topk_group"])
    rsf = f32(1.0 if bug == "drop-rsf" else float(meta["rsf"]))
    x, L = t["x"].astype(f32), t["logits"].astype(f32)

    # routing, in fp32: scores, selection keys (bias selects only), groups, top-k
    if meta["score"] == "softmax":
        e = np.exp(L - L.max(axis=1, keepdims=True))
        s = e / e.sum(axis=1, keepdims=True)
    elif meta["score"] == "sqrt_softplus":  # level 2: torch's softplus (l above 20), then sqrt
        s = np.sqrt(np.where(L > 20, L, np.log1p(np.exp(L)))).astype(f32)
    elif mode == "flashinfer-trtllm-bf16":
        s = (f32(0.5) * np.tanh(f32(0.5) * L) + f32(0.5)).astype(f32)  # FlashInfer's tanh form
    else:
        s = f32(1) / (f32(1) + np.exp(-L))
    if meta.get("nonfinite", "propagate") == "zero":  # level 2: a non-finite score becomes 0
        s = np.where(np.isfinite(s), s, f32(0)).astype(f32)
    key = s + t["bias"].astype(f32) if meta["bias"] != "none" else s.copy()
    key = np.where(np.isnan(key), -np.inf, key).astype(f32)  # NaN ranks last
    if n_group > 1:
        G = E // n_group
        kg = key.reshape(T, n_group, G)
        if meta["group_rule"] == "max" or G == 1:
            gscore = kg.max(axis=2)
        else:
            gscore = np.sort(kg, axis=2)[:, :, -2:].sum(axis=2)
        kept = np.argsort(-gscore, axis=1, kind="stable")[:, :topk_group]  # ties: lower group
        keep = np.zeros((T, n_group), bool)
        keep[np.arange(T)[:, None], kept] = True
        key = np.where(np.repeat(keep, G, axis=1), key, -np.inf)
    ids = np.argsort(-key, axis=1, kind="stable")[:, :k].astype(np.int32)  # ties: lower index
    w = np.take_along_axis(s, ids, axis=1)
    if meta["renormalize"] == "true":
        S, eps = w.sum(axis=1, keepdims=True), f32(float(meta["eps"]))
        denom = meta.get("renorm_denom", "sum_eps")  # level 2: the denominator
        if denom == "sum_or_one":
            D = np.where(S > 0, S, f32(1))
        elif denom == "max_eps":
            D = np.where(S < eps, eps, S)
        else:
            D = S + eps
        w = w / D.astype(f32)
    if meta["rsf_site"] == "weights":
        w = w * rsf
    if mode == "flashinfer-trtllm-bf16":
        w = round_bf16(w)  # the routing kernel writes bf16 weights
    w = w.astype(f32)

    # experts: each local expert over the tokens routed to it
    acc = np.zeros((T, H), f32)
    w13, w2 = t["w13"], t["w2"]
    b13, b2 = t.get("b13"), t.get("b2")  # level 2: expert biases (absent: none)
    act = meta.get("activation", "silu_glu")
    lim = f32(float(meta.get("act_limit", "0")))
    alpha = f32(float(meta.get("act_alpha", "0")))
    for le in range(E_local):
        tok, slot = np.nonzero(ids == offset + le)
        if len(tok) == 0:
            continue
        gu = x[tok] @ w13[le].T  # [n, 2I] in fp32
        if b13 is not None:
            gu = (gu + b13[le].astype(f32)).astype(f32)  # GEMM1's bias, in W13's row order
        if meta["layout"] == "interleaved":  # level 2: row 2j gate j, 2j + 1 up j
            gate, up = gu[:, 0::2], gu[:, 1::2]
        elif meta["layout"] == "gate_up":
            gate, up = gu[:, :I], gu[:, I:]
        else:
            gate, up = gu[:, I:], gu[:, :I]
        if mode == "vllm-triton":
            gate, up = round_bf16(gate), round_bf16(up)  # GEMM1 writes bf16
        if act != "silu_glu":  # level 2's clamped activations (moefuzz/kernel_abi.h)
            up = np.clip(up, -lim, lim).astype(f32)
            if act != "silu_clamp_after":
                gate = np.minimum(gate, lim).astype(f32)
        if act == "swiglu_oai":
            a = round_bf16((up + f32(1)) * gate / (f32(1) + np.exp(-gate * alpha)))
        else:
            silu = gate / (f32(1) + np.exp(-gate))
            if mode == "vllm-triton" and act != "silu_clamp_after":
                silu = round_bf16(silu)  # silu_and_mul: silu(g) in bf16 before the multiply
            if act == "silu_clamp_after":
                silu = np.minimum(silu, lim).astype(f32)
            a = round_bf16(silu * up)  # bf16 before GEMM2
        y = a @ w2[le].T  # [n, H]
        if b2 is not None:
            y = (y + b2[le].astype(f32)).astype(f32)  # the expert output's bias
        if mode == "flashinfer-trtllm-bf16":
            y = round_bf16(y)  # GEMM2 writes bf16
        contrib = w[tok, slot][:, None] * y
        if mode == "vllm-triton":
            contrib = round_bf16(contrib)  # routed weight multiplied in the GEMM2 epilogue
        acc[tok] += contrib  # a token meets an expert at most once
    if meta["rsf_site"] == "output":
        if mode == "vllm-triton":
            acc = round_bf16(round_bf16(acc) * rsf)  # rsf times moe_sum's bf16 output, in bf16
        else:
            acc = acc * rsf
    return f32_to_bf16(acc), ids, w

# ---- one case ----

# the per-expert tensors that cache=weights keeps, and what it holds
WEIGHTS = ("w13", "w2", "b13", "b2", "w13_s", "w2_s", "sw13", "sw2", "w13_q", "w13_sc", "w2_q",
           "w2_sc")
cache = {"key": None, "tensors": {}, "cases": 0, "hits": 0}


def use_weight_cache(t, meta, bug):
    """Completes t from the cache when the case file says "weights" = "cached"; keeps the
    weights of a file that carries them. Returns an error reply, or None."""
    key = meta.get("weights_key")
    if key is None:
        return None
    cache["cases"] += 1
    if meta.get("weights") == "cached" or (bug == "stale-weights" and cache["key"] is not None):
        if meta.get("weights") == "cached" and key != cache["key"] and bug != "stale-weights":
            return "error the case's weights_key %s is not the one held (%s)" % (key, cache["key"])
        t.update(cache["tensors"])
        cache["hits"] += 1
    else:
        cache["key"], cache["tensors"] = key, {n: t[n] for n in WEIGHTS if n in t}
    return None


def run_case(case_path, out_path, mode, method, bug):
    t, meta = read_safetensors(case_path)
    why = use_weight_cache(t, meta, bug)
    if why:
        return why
    if method and meta.get("routing_method") != method:
        return "error the case was not routed by %s (routing_method=%s)" % (method, meta.get("routing_method"))
    why = refusal(meta)
    if why:
        return "unsupported " + why
    if bug in ("crash", "hang") and meta["T"] == "1":
        if bug == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(3600)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        out, ids, w = moe_forward(t, meta, mode, bug)
    write_safetensors(out_path, {"out": ("BF16", out), "topk_ids": ("I32", ids),
                                 "topk_weights": ("F32", w)}, {"format": "moefuzz-result-1"})
    return "ok"


def main():
    args, mode, method, dirs, caching = sys.argv[1:], "any-order", None, [], True
    while args:
        a = args.pop(0)
        if a == "--mode" and args:
            mode = args.pop(0)
        elif a == "--no-cache":
            caching = False
        elif a == "--method" and args:
            method = args.pop(0)
        elif not a.startswith("-"):
            dirs.append(a)
        else:
            sys.exit("usage: moe_numpy.py [--mode any-order|vllm-triton|flashinfer-trtllm-bf16] [--method NAME] [--no-cache] [DIR...]")
    if mode not in ("any-order", "vllm-triton", "flashinfer-trtllm-bf16"):
        sys.exit("moe_numpy.py: unknown mode %s" % mode)
    bug = os.environ.get("MOE_NUMPY_BUG", "")

    if dirs:  # batch: every exported case in the directories; none at all is bad input (exit 2)
        n_cases, n_errors = 0, 0
        for d in dirs:
            if not os.path.isdir(d):
                print("moe_numpy.py: %s is not a directory" % d, file=sys.stderr)
                sys.exit(2)
            for name in sorted(os.listdir(d)):
                if name.endswith(".safetensors") and not name.endswith(".out.safetensors"):
                    case = os.path.join(d, name)
                    out = case[:-len(".safetensors")] + ".out.safetensors"
                    reply = run_case(case, out, mode, method, bug)
                    n_cases += 1
                    if reply.startswith("unsupported "):  # a result file that says so (docs/files.md)
                        write_safetensors(out, {}, {"format": "moefuzz-result-1",
                                                    "unsupported": reply[len("unsupported "):]})
                    elif reply != "ok":
                        n_errors += 1
                        print("%s: %s" % (name, reply), file=sys.stderr)
        if n_cases == 0:
            print("moe_numpy.py: no case files (NAME.safetensors) in %s" % " ".join(dirs), file=sys.stderr)
            sys.exit(2)
        print("moe_numpy.py: %d case file%s, %d error%s" % (n_cases, "" if n_cases == 1 else "s",
              n_errors, "" if n_errors == 1 else "s"), file=sys.stderr)
        sys.exit(1 if n_errors else 0)

    # the exec protocol: one request per line on stdin, one reply per line on stdout
    while True:
        line = sys.stdin.readline()
        if not line or line.split()[:1] == ["quit"]:
            if cache["cases"] and os.environ.get("MOE_NUMPY_STATS"):
                print("moe_numpy.py: %d case files with a weights_key, %d of them completed from the "
                      "weight cache" % (cache["cases"], cache["hits"]), file=sys.stderr)
            return  # EOF or quit: moefuzz is gone
        words = line.split()
        if not words:
            continue
        if words[0] == "hello":
            # protocol 3; level 2: the cases of case format v2 too (docs/case-format.md)
            reply = "hello moe_numpy protocol=3 level=2 contract=%s routing=1" % mode + (
                " method=%s" % method if method else "") + (" cache=weights" if caching else "")
        elif words[0] == "run" and len(words) == 3:
            try:
                reply = run_case(words[1], words[2], mode, method, bug)
            except Exception as e:  # a bug in the adapter is an error reply, not a crash
                reply = "error %s: %s" % (type(e).__name__, str(e).replace("\n", " "))
        else:
            reply = "error unknown request %s" % words[0]
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
