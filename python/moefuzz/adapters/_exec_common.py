"""_exec_common.py: what moefuzz's exec adapters for other projects' kernels share.

The safetensors files of the exec protocol, the loading of a project's own functions from its
sources by AST extraction (never copied into this repository), the two patches that make Triton
3.6's interpreter compute what the GPU computes, and the request loop (docs/files.md, "exec").
Used by vllm_fused_moe.py and sglang_fused_moe.py, as a sibling module (both run as scripts too).
"""
import ast
import json
import os
import struct
import sys


class Unsupported(Exception):
    """A case the project cannot express, or a path of the project the adapter does not compute."""


# ---- safetensors: u64 little-endian header length, JSON header, data (docs/files.md) ----

def read_safetensors(path):
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    dtypes = {"BF16": "<u2", "F32": "<f4", "I32": "<i4", "F8_E4M3": "u1", "U8": "u1"}
    tensors = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        dt = np.dtype(dtypes[t["dtype"]])
        arr = np.frombuffer(data, dt, (end - begin) // dt.itemsize, 8 + n + begin)
        tensors[name] = (t["dtype"], arr.reshape(t["shape"]))
    return tensors, meta


def write_safetensors(path, tensors, meta):
    import numpy as np
    header, blobs, offset = {"__metadata__": meta}, [], 0
    for name, (dtype, arr) in tensors.items():
        blob = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".tmp", path)


# ---- a case file in, a result file out (exec protocol 3, docs/files.md) ----

# the tensors a case file carries per token; every other one is a per-expert tensor, which a file
# under `cache=weights` may leave out (docs/files.md)
PER_TOKEN = ("x", "logits", "bias", "shared_gate", "topk_ids_in", "topk_weights_in")


class CaseReader:
    """Reads case files under `cache=weights`: the per-expert tensors of the last file that
    carried them (with its weights_key) complete the files that leave them out."""

    def __init__(self):
        self.key, self.tensors = None, {}

    def read(self, case_path):
        """(tensors, meta, None), or (None, None, the error reply) for a file whose weights_key
        is not the one held."""
        t, meta = read_safetensors(case_path)
        key = meta.get("weights_key")
        if key is not None:
            if meta.get("weights") == "cached":
                if key != self.key:
                    return None, None, "error the case's weights_key %s is not the one held " \
                                       "(%s)" % (key, self.key)
                t.update(self.tensors)
            else:
                self.key, self.tensors = key, {n: a for n, a in t.items() if n not in PER_TOKEN}
        return t, meta, None


def write_result(out_path, out, ids, w):
    """The result file: out (bf16 bits), topk_ids, topk_weights."""
    write_safetensors(out_path, {"out": ("BF16", out), "topk_ids": ("I32", ids),
                                 "topk_weights": ("F32", w)}, {"format": "moefuzz-result-1"})


class ExecAdapter:
    """One adapter's side of the exec protocol: the hello line, then per case its tensors read
    (CaseReader), `forward(tensors, meta)` -> (out, ids, weights, what) run, and the result file
    written, or the case refused where forward raises Unsupported; each case logged by name."""

    def __init__(self, name, contract, caching, forward, log, level=2):
        self.name, self.contract, self.caching, self.level = name, contract, caching, level
        self.forward, self.log = forward, log
        self.cases = CaseReader()

    def hello(self):
        return ("hello %s protocol=3 level=%d contract=%s routing=1%s"
                % (self.name, self.level, self.contract, " cache=weights" if self.caching else ""))

    def run(self, case_path, out_path):
        t, meta, error = self.cases.read(case_path)
        if error:
            return error
        name = meta.get("name", case_path)
        try:
            out, ids, w, what = self.forward(t, meta)
        except Unsupported as e:
            self.log("%s: unsupported: %s" % (name, e))
            return "unsupported %s" % str(e).replace("\n", " ")
        self.log("%s: %s" % (name, what))
        write_result(out_path, out, ids, w)
        return "ok"


# ---- loading a project's functions from its sources ----

KEPT_DECORATORS = ("triton.jit", "functools.lru_cache", "functools.lru_cache()")


def load_functions(path, names, ns, assignments=(), project="the project"):
    """Executes the top-level functions `names` (and the top-level assignments to the names in
    `assignments`, for the constants those functions read) of the Python file `path` in namespace
    ns, with their decorators except triton.jit and functools.lru_cache removed (torch.compile
    and custom-op registration are applied, or not, by the caller). Code objects keep the file's
    name and line numbers, so tracebacks and inspect.getsource (which Triton's jit reads) point
    into the user's copy of the project."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in names:
            node.decorator_list = [d for d in node.decorator_list
                                   if ast.unparse(d) in KEPT_DECORATORS]
            found[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id in assignments:
                    found[t.id] = node
    wanted = list(names) + list(assignments)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise RuntimeError("%s: no %s (is this %s?)" % (path, ", ".join(missing), project))
    module = ast.Module(body=[found[n] for n in wanted], type_ignores=[])
    # a function's __module__ is its namespace's __name__, None without one; Triton's code
    # generator calls __module__.startswith on every global a kernel names (a @triton.jit helper
    # included), so a namespace without a name fails to compile on a GPU, not in the interpreter
    ns.setdefault("__name__", "moefuzz_loaded." + os.path.splitext(os.path.basename(path))[0])
    exec(compile(module, path, "exec"), ns)


# ---- Triton's interpreter, made to compute what the GPU computes ----

def patch_interpreter():
    """Triton 3.6's interpreter (triton/runtime/interpreter.py) holds bf16 values as their uint16
    bit patterns, and (1) `create_dot` hands those bit patterns to np.matmul as integers (only
    8-bit floats are converted first), (2) `cast_impl` from fp32 to bf16 calls _convert_float
    without a rounding mode, which truncates. On the GPU tl.dot multiplies the bf16 values and
    `.to(tl.bfloat16)` rounds to nearest even. These two methods are replaced so that the
    interpreter computes the kernel's arithmetic: dot = np.matmul of the exact fp32 values of the
    bf16 operands (BLAS order) + acc; fp32 -> bf16 rounds to nearest even (NaN stays NaN)."""
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter as ti

    def widen(h):
        if h.dtype.scalar == tl.bfloat16:
            return (h.data.astype(np.uint32) << 16).view(np.float32)
        return None

    orig_dot, orig_cast = ti.InterpreterBuilder.create_dot, ti.InterpreterBuilder.cast_impl
    if getattr(orig_dot, "moefuzz_patched", False):
        return

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        wa, wb = widen(a), widen(b)
        if wa is None and wb is None:
            return orig_dot(self, a, b, d, input_precision, max_num_imprecise_acc)
        wa = a.data if wa is None else wa
        wb = b.data if wb is None else wb
        return ti.TensorHandle(np.matmul(wa, wb, dtype=d.data.dtype) + d.data, d.dtype.scalar)

    def cast_impl(self, src, dst_type):
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            u = np.ascontiguousarray(src.data, np.float32).view(np.uint32).astype(np.uint64)
            r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
            nan = np.isnan(src.data)
            r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
            return ti.TensorHandle(r, dst_type.scalar)
        return orig_cast(self, src, dst_type)

    create_dot.moefuzz_patched = True
    ti.InterpreterBuilder.create_dot = create_dot
    ti.InterpreterBuilder.cast_impl = cast_impl


# ---- the exec protocol's request loop (docs/files.md) ----

def serve(adapter, log):
    """Answers hello / run CASE OUT / quit on stdin, one reply line each on stdout. An exception
    in adapter.run is an error reply, with its traceback on stderr, not a crash."""
    while True:
        line = sys.stdin.readline()
        if not line or line.split()[:1] == ["quit"]:
            return 0
        words = line.split()
        if not words:
            continue
        if words[0] == "hello":
            reply = adapter.hello()
        elif words[0] == "run" and len(words) == 3:
            try:
                reply = adapter.run(words[1], words[2])
            except Exception as e:  # an adapter bug is an error reply, not a crash
                import traceback
                traceback.print_exc(file=sys.stderr)
                reply = "error %s: %s" % (type(e).__name__, str(e).replace("\n", " "))
        else:
            reply = "error unknown request %s" % words[0]
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


def choose_device(device, log):
    """cuda where torch sees one (unless --device says), else cpu with Triton's interpreter,
    which must be chosen before triton is imported. Returns the device, or None (logged)."""
    import importlib.util
    if device != "cuda":
        if device is None:
            try:
                import torch
                device = "cuda" if torch.cuda.is_available() else "cpu"
            except ImportError as e:
                log("torch is not installed (%s)" % e)
                return None
        if device == "cpu":
            os.environ["TRITON_INTERPRET"] = "1"
    if importlib.util.find_spec("triton") is None:
        log("triton is not installed")
        return None
    return device
