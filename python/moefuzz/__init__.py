"""moefuzz in Python: check a fused MoE kernel against moefuzz's exact (MPFR) reference.

    import moefuzz
    case = moefuzz.Case.load("corpus/seeds/deepseek-v3-rsf2.446.txt")
    v = moefuzz.check(my_kernel, case, contract="any-order")   # runs my_kernel(call)
    assert v, v.report
    moefuzz.assert_moe_close(out, case)                        # outputs computed elsewhere

The checks are moefuzz's own C code (the extension module moefuzz._core links the library the
`moefuzz` tool is built from): a callable runs as `moefuzz check` runs a backend, into a
poisoned output between guard bands, twice where the contract is deterministic, and under the
metamorphic relations when asked; a failure is attributed to the knob that explains it.

A kernel callable gets one argument, a KernelCall `k`: the call's tensors by their case-file
names (docs/files.md), k.x, k.logits, k.w13, ... or k.tensor(name) as float32 numpy arrays (bf16
values and e4m3 codes widened exactly; int32 and packed bytes as they are), k.bits(name) (what
the kernel gets, no copy: bf16 bit patterns, e4m3 codes, float32, int32 or MXFP4's packed
bytes), k.torch(name) (a torch tensor through DLPack, when torch is installed: bf16, float8_e4m3fn
or as is), k.names (the tensors the call has), k.params (the case file's parameters as strings:
"T", "score", "rsf", "weight_format", ...; every case format v2 parameter is there, "0" or its
level-1 name where the case leaves it), k.p (the same as numbers, the ABI's), k.out (the output
buffer, bf16 bits, poisoned) and k.weights_key (the 64-bit key of the per-expert tensors, the
exec protocol's: a kernel may keep what it derives from the weights, device copies included, by
it). A call carries every parameter and tensor of the case (ABI feature level 8): a kernel that
does not handle a parameter's value must refuse the case. It returns the output [T, H] (float
arrays are rounded to bf16 to nearest even; uint16/int16 arrays and torch bf16 tensors are
taken as bf16 bits), or (out, topk_ids, topk_weights) with routing=True, or None after writing
k.out itself. It raises moefuzz.Unsupported(reason) for a case it does not handle. The arrays of
a call are valid during the call only (some are converted copies, some belong to a transformed
problem of the metamorphic relations): a kernel keeps copies, keyed by k.weights_key. An
fp8_block call's block_n and block_k are the sizes the kernel gets (128 where the case leaves
them 0).
"""
import os

from . import _core
from ._core import MoefuzzError

__all__ = ["Case", "KernelCall", "Verdict", "Unsupported", "MoefuzzError", "cases", "check",
           "check_outputs", "assert_moe_close", "contracts", "models", "fuzz", "FuzzResult",
           "v2_params"]

# the tensors of a case format v1 case (a v2 case may have more: KernelCall.names)
TENSORS = ("x", "logits", "bias", "w13", "w2")
# the names of every tensor a case may have (docs/files.md); a kernel call of an mxfp4 case also
# has MXFP4's packed form: w13_q, w13_sc, w2_q, w2_sc
TENSOR_NAMES = _core.tensor_names()


class Unsupported(Exception):
    """Raised by a kernel callable for a case it does not handle (the reason is reported). Any
    other exception is the kernel's error: a NotImplementedError that torch raises for an
    operation on a dtype (float8 arithmetic, say) is a bug to see, not a refusal."""


def contracts():
    """Names of the built-in contracts (`moefuzz contracts`)."""
    return _core.contracts()


def v2_params(params):
    """{key: value} of the case format v2 parameters that params (Case.params, KernelCall.params)
    sets: those not at their level-1 value. Empty for a case of format v1. A kernel that
    implements none of them refuses a case where this is not empty."""
    return {k: params[k] for k, (_, zero) in _core.v2_params().items()
            if params.get(k, zero) != zero}


def models():
    """Names of the model presets (`moefuzz models`)."""
    return _core.models()


def _np():
    try:
        import numpy
    except ImportError:
        raise ImportError("moefuzz: tensors need numpy (pip install numpy)") from None
    return numpy


class _Mem:
    """Memory at an address, for numpy: the array made from it references this object, which
    keeps `keep` (the memory's owner) alive for the array's lifetime."""
    __slots__ = ("__array_interface__", "keep")

    def __init__(self, addr, shape, typestr, readonly, keep):
        self.__array_interface__ = {"shape": tuple(shape), "typestr": typestr,
                                    "data": (addr, readonly), "version": 3}
        self.keep = keep


def _view(addr, shape, dtype, owner, readonly=True):
    """A numpy array over memory moefuzz owns at addr; owner is kept alive by the array. Inputs
    are read-only: a kernel gets the problem's own arrays, as the C ABI's const pointers."""
    np = _np()
    return np.asarray(_Mem(addr, shape, np.dtype(dtype).str, readonly, owner))


def _addr(a):
    return a.__array_interface__["data"][0]


def _convert(a, dtype_in, dtype_out, fn):
    """fn (an extension's conversion by address) from a (as a contiguous array) into a new one."""
    np = _np()
    b = np.ascontiguousarray(a, dtype_in)
    r = np.empty(b.shape, dtype_out)
    fn(_addr(b), _addr(r), b.size)
    return r


def bf16_to_f32(bits):
    """bf16 bit patterns (uint16) -> float32 values (exact)."""
    return _convert(bits, _np().uint16, _np().float32, _core.bf16_widen)


def f32_to_bf16(x):
    """float values -> bf16 bit patterns, rounded to nearest even; NaN stays a quiet NaN."""
    return _convert(x, _np().float32, _np().uint16, _core.bf16_round)


def e4m3_to_f32(codes):
    """e4m3 (float8_e4m3fn) codes (uint8) -> float32 values (exact; NaN codes NaN)."""
    return _convert(codes, _np().uint8, _np().float32, _core.e4m3_widen)


def _torch_bf16(bits, device=None):
    import torch  # only when asked for: torch is never a dependency

    t = torch.from_dlpack(_np().ascontiguousarray(bits).view(_np().int16)).view(torch.bfloat16)
    return t.to(device) if device is not None else t


def _torch_of(a, kind, device=None):
    """A torch tensor of array a (bits as the kernel gets them, of element kind `kind`)."""
    if kind == "bf16":
        return _torch_bf16(a, device)
    import torch

    t = torch.from_dlpack(_np().ascontiguousarray(a))
    if kind == "e4m3":
        t = t.view(torch.float8_e4m3fn)
    return t.to(device) if device is not None else t


def _params_text(text):
    """The parameters of a text case as the case file's metadata has them (strings)."""
    meta = {}
    for line in text.splitlines():
        if line.startswith("#") or " = " not in line:
            continue
        k, v = line.split(" = ", 1)
        if not k.startswith(("gen.", "poke", "defaults")):
            meta[k] = v
    return meta


class _Widened:
    """The float32 form of the expert weights while they stay the same: what KernelCall.tensor
    gives for w13 and w2 across calls, widened once. Whoever runs the calls knows when the
    weights stay, without hashing them: `token` names them (moefuzz.check: the case's own
    arrays; the worker: the weights the shared file holds, until they are rewritten). One token
    at a time: a new one drops the arrays of the old."""

    def __init__(self):
        self.token, self.f32 = None, {}

    def get(self, token, name, bits, kind="bf16"):
        if token != self.token:
            self.token, self.f32 = token, {}
        if name not in self.f32:
            self.f32[name] = _read_only(_widen(bits, kind))
        return self.f32[name]


def _widen(bits, kind):
    return bf16_to_f32(bits) if kind == "bf16" else e4m3_to_f32(bits)


def _read_only(a):
    a.flags.writeable = False
    return a


class _Tensors:
    """Tensor access of Case and KernelCall, over their bits(name) (read-only views)."""

    _wide = None  # (a _Widened, the token of the call's weights) that serves them (KernelCall)

    def tensor(self, name):
        """Tensor `name` as float32 values (bf16 values and e4m3 codes widened exactly; int32
        and packed bytes as they are), read-only; None when absent."""
        if name not in self._f32:
            b = self.bits(name)
            kind = self._kind(name)
            if b is None or kind not in ("bf16", "e4m3"):
                self._f32[name] = b
            elif self._wide is not None and name in WEIGHTS:
                self._f32[name] = self._wide[0].get(self._wide[1], name, b, kind)
            else:
                self._f32[name] = _read_only(_widen(b, kind))
        return self._f32[name]

    def torch(self, name, device=None):
        """Tensor `name` as a torch tensor through DLPack: bf16 where the kernel gets bf16,
        float8_e4m3fn where it gets e4m3 codes, else as bits() has it."""
        b = self.bits(name)
        if b is None:
            return None
        return _torch_of(b, self._kind(name), device)

    x = property(lambda self: self.tensor("x"))
    logits = property(lambda self: self.tensor("logits"))
    bias = property(lambda self: self.tensor("bias"))
    w13 = property(lambda self: self.tensor("w13"))
    w2 = property(lambda self: self.tensor("w2"))


class Case(_Tensors):
    """A moefuzz case: its parameters, how its tensors are generated, and the tensors.

    Case.load(path), Case.from_text(text), Case.random(seed, model=...) and
    Case.from_tensors(...) make one; `model` applies a model preset (its routing and small
    sizes, or its full sizes with full=True), `method` a routing method (`moefuzz methods`)."""

    def __init__(self, problem, label):
        self._pb = problem
        self.label = label
        self.text = problem.text()
        self.params = _params_text(self.text)
        self._f32 = {}
        self._calls_wide = _Widened()  # the float32 weights of moefuzz.check's calls

    @classmethod
    def load(cls, path, model=None, full=False, method=None, raw=False):
        """A case file: text, a binary corpus input, or a safetensors case file."""
        return cls(_core.load(os.fspath(path), model, full, method, raw), os.fspath(path))

    @classmethod
    def from_text(cls, text, model=None, full=False, method=None, label="<text>"):
        return cls(_core.parse(text, model, full, method), label)

    @classmethod
    def random(cls, seed, model=None, full=False, method=None):
        """A random case: `moefuzz fuzz`'s generator, or one of a model as `moefuzz check
        --model M --cases N` draws it. The same seed gives the same case."""
        label = "%s#seed=%d" % (model or "random", seed)
        return cls(_core.random(seed, model, full, method), label)

    @classmethod
    def from_tensors(cls, x, logits, w13, w2, bias=None, label="<tensors>", tensors=None,
                     **params):
        """A case from the caller's own tensors, as `moefuzz verify` reads a case file: x
        [T, H], logits [T, E], w13 [E_local, 2I, H], w2 [E_local, H, I] (bf16 values: float
        arrays must hold bf16-representable values; uint16 arrays are bf16 bits), bias [E] or
        None, and the parameters by their case file names (top_k=..., score="sigmoid", rsf=...,
        and case format v2's: weight_format="fp8_block", n_shared=1, placement="map", ...; the
        others default as in a text case), the case's `bias` (f32 or bf16: its dtype) as
        bias_dtype. tensors={name: array} gives the other tensors those parameters call for
        (docs/case-format.md: b13, b2, w13_s, w2_s, sw13, sw2, shared_gate, topk_ids_in,
        topk_weights_in, expert_map; an mxfp4 case's packed w13_q, w13_sc, w2_q, w2_sc), each in
        its case-file dtype; an fp8_block case's w13 and w2 are e4m3 codes (uint8, or torch
        float8_e4m3fn). A tensor missing or one too many is an error naming it."""
        np = _np()
        import json
        import struct

        arrays = {"x": x, "logits": logits, "w13": w13, "w2": w2}
        if bias is not None:
            arrays["bias"] = bias
        for n, a in (tensors or {}).items():
            if n in arrays:
                raise MoefuzzError("tensor %s is an argument of its own, not one of tensors=" % n)
            arrays[n] = a
        arrays = {n: _host_array(a) for n, a in arrays.items()}
        T, H = arrays["x"].shape
        E = arrays["logits"].shape[1]
        E_local, two_i, _ = arrays["w13"].shape
        meta = _params_text(_core.parse(
            "T = %d\nH = %d\nI = %d\nE = %d\nE_local = %d\ntop_k = 1\nscore = softmax\n"
            "bias = none\nrsf = 1\ndefaults = expert_offset n_group topk_group group_rule "
            "renormalize eps rsf_site activation layout logits_dtype gen.x gen.logits gen.bias "
            "gen.w13 gen.w2\n" % (T, H, two_i // 2, E, E_local)).text())
        meta.update({k: zero for k, (_, zero) in _core.v2_params().items()})
        if "bias" in params:
            raise MoefuzzError("bias is the bias tensor; its dtype is bias_dtype=f32|bf16")
        params["bias"] = params.pop("bias_dtype", "none" if bias is None else "f32")
        for k, v in params.items():
            if k not in meta:
                raise MoefuzzError("unknown case parameter '%s'" % k)
            meta[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
        if meta["bias"] != "none" and bias is None:
            raise MoefuzzError("bias = %s needs a bias tensor" % meta["bias"])
        layout = _core.case_layout("".join("%s = %s\n" % kv for kv in meta.items()) +
                                   "defaults = gen.x gen.logits gen.bias gen.w13 gen.w2\n")
        want = [n for n, _, _ in layout]
        for n in arrays:
            if n not in want:
                raise MoefuzzError("tensor %s: a case of these parameters has none (it has %s)"
                                   % (n, ", ".join(want)))
        for n in want:
            if n not in arrays:
                raise MoefuzzError("tensor %s: these parameters call for it (pass tensors={'%s':"
                                   " ...})" % (n, n))
        meta["format"] = "moefuzz-case-1"
        header, blobs, off = {"__metadata__": meta}, [], 0
        for name, dt, _ in layout:
            a = arrays[name]
            if dt == "BF16":
                arr = _bits(a, strict=name)
            elif dt == "F32":
                arr = _values(a)
            elif dt == "I32":
                if a.dtype.kind not in "iu":
                    raise MoefuzzError("%s: expected integers, got %s" % (name, a.dtype))
                arr = a.astype(np.int32)
            else:  # F8_E4M3 codes, U8 packed bytes
                if a.dtype not in (np.uint8, np.int8):
                    raise MoefuzzError("%s: expected %s bytes (uint8), got %s" % (name, dt,
                                                                                   a.dtype))
                arr = a.view(np.uint8)
            blob = np.ascontiguousarray(arr).tobytes()
            header[name] = {"dtype": dt, "shape": list(arr.shape),
                            "data_offsets": [off, off + len(blob)]}
            blobs.append(blob)
            off += len(blob)
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * (-(8 + len(h)) % 8)
        data = struct.pack("<Q", len(h)) + h + b"".join(blobs)
        return cls(_core.from_safetensors(data), label)

    @property
    def weights_key(self):
        """The key of the case's per-expert tensors as a kernel gets them now (KernelCall.
        weights_key of the case's first call; the exec protocol's "weights_key"). A lazy
        case's unroutable experts are poisoned until bits() generates them."""
        return self._pb.weights_key()

    def bits(self, name):
        """Tensor `name` as moefuzz holds it, without a copy: bf16 tensors as uint16 bit
        patterns (an fp8_block case's weights too: the bf16 values whose e4m3 codes a kernel
        gets), fp32 ones as float32, int32 ones as int32; None for a tensor the case does not
        have."""
        t = self._pb.tensor(name)
        if t is None:
            return None
        addr, shape, kind = t
        np = _np()
        return _view(addr, shape, {"bf16": np.uint16, "i32": np.int32}.get(kind, np.float32),
                     self)

    def _kind(self, name):
        t = self._pb.tensor(name, False)
        return None if t is None else t[2]

    def save(self, path):
        """Writes the case as text (`moefuzz check PATH` and Case.load read it back)."""
        with open(path, "w") as f:
            f.write(self.text)
        return path

    def __repr__(self):
        p = self.params
        return "Case(%s: T=%s H=%s I=%s E=%s top_k=%s %s)" % (
            self.label, p["T"], p["H"], p["I"], p["E"], p["top_k"], p["score"])


def cases(path, model=None, full=False, method=None):
    """The cases under path (a file or a directory, as `moefuzz check PATH` collects them)."""
    for p in _core.paths(os.fspath(path)):
        yield Case.load(p, model, full, method)


def _host_array(a):
    """numpy array of a numpy, torch (any device: copied to the host) or DLPack tensor; torch
    bf16 comes back as uint16 bit patterns, torch float8 as its codes (uint8)."""
    np = _np()
    mod = type(a).__module__
    if mod.startswith("torch"):
        import torch

        a = a.detach()
        if a.dtype == torch.bfloat16:
            return a.view(torch.int16).cpu().numpy().view(np.uint16)
        if a.dtype in (getattr(torch, "float8_e4m3fn", None), getattr(torch, "float8_e5m2", None)):
            return a.view(torch.uint8).cpu().numpy()  # the codes
        return a.cpu().numpy()
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "__dlpack__") and not hasattr(a, "__array__"):
        return np.from_dlpack(a)
    if hasattr(a, "get") and mod.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def _bits(a, strict=None):
    """bf16 bit patterns of an array: uint16/int16 taken as bits, floats rounded to bf16 (with
    strict=NAME, floats must be bf16 values already: an input tensor is not rounded)."""
    np = _np()
    a = _host_array(a)
    if a.dtype in (np.uint16, np.int16):
        return np.ascontiguousarray(a).view(np.uint16)
    if a.dtype.kind != "f":
        raise TypeError("moefuzz: expected a float or bf16 tensor, got %s" % a.dtype)
    b = f32_to_bf16(a)
    if strict:
        same = bf16_to_f32(b) == np.asarray(a, np.float32)
        if not np.all(same | np.isnan(np.asarray(a, np.float32))):
            raise MoefuzzError("%s holds values bf16 cannot represent (round them first, or "
                               "pass bf16 tensors)" % strict)
    return b


def _values(a):
    """float32 values of an array: uint16/int16 taken as bf16 bits."""
    np = _np()
    a = _host_array(a)
    if a.dtype in (np.uint16, np.int16):
        return bf16_to_f32(np.ascontiguousarray(a).view(np.uint16))
    return np.asarray(a, np.float32)


# the weights whose float32 form a case keeps between the calls of one check (KernelCall.tensor)
WEIGHTS = ("w13", "w2")


class KernelCall(_Tensors):
    """One call of a kernel callable: the tensors and parameters of the (possibly transformed,
    for the metamorphic relations) problem moefuzz runs it on. See the module's doc.

    k.weights_key: the 64-bit key of the per-expert tensors (w13, w2 and whatever else of the
    experts the case has: biases, scales, shared experts, MXFP4's packed form; names, shapes,
    bytes), the exec protocol's "weights_key": equal keys, equal weights, so a kernel may keep
    what it derives from the weights (device copies, a packed layout) by this key between
    calls."""

    def __init__(self, params, text, arrays, layout, pkey, weights_key=None, wide=None):
        self.p = params  # numbers: the ABI's T, H, ..., score_fn, ...; the v2 keys
        self.params = text  # the case file's keys and values, strings
        self._layout = {e[0]: e for e in layout}  # name -> (name, _, shape, typestr, kind, w)
        self._bits = {n: a for n, a in arrays.items() if n not in _OUTPUTS}
        self.out = arrays["out"]
        self._ids, self._w = arrays.get("topk_ids"), arrays.get("topk_weights")
        self._pkey = pkey
        self._key = weights_key
        self._wide = wide  # (_Widened, token): kept between calls by whoever runs them, or None
        self._f32 = {}

    @classmethod
    def _at(cls, params, text, layout, pkey, owner, wide=None):
        """The call over the addresses of layout (the extension's), owner kept alive by the
        views."""
        arrays = {}
        for name, addr, shape, typestr, _, _ in layout:
            arrays[name] = _np().asarray(_Mem(addr, shape, typestr, name not in _OUTPUTS, owner))
        return cls(params, text, arrays, layout, pkey, wide=wide)

    def bits(self, name):
        return self._bits.get(name)

    def _kind(self, name):
        e = self._layout.get(name)
        return None if e is None else e[4]

    @property
    def names(self):
        """The names of the call's input tensors (those the case has)."""
        return tuple(self._bits)

    @property
    def weights_key(self):
        if self._key is None:
            self._key = _core.weights_key_of(self._pkey, {
                n: _addr(self._bits[n]) for n, e in self._layout.items() if e[5]})
        return self._key

    @property
    def tensors(self):
        """{name: float32 array} of the tensors the case has (what a case file holds)."""
        return {n: self.tensor(n) for n in self._bits}


_OUTPUTS = ("out", "topk_ids", "topk_weights")


class Verdict:
    """The verdict on one case: passed (also its truth value), unsupported, stages (the failed
    stages, "-" for none), n_bad (per stage), report (moefuzz check's text), attribution."""

    def __init__(self, d, case, contract):
        self.__dict__.update(d)
        self.case = case
        self.contract = contract

    def __bool__(self):
        return bool(self.passed)

    def __str__(self):
        head = "%s %s (contract %s)" % (
            "UNSUPPORTED" if self.unsupported else "PASS" if self.passed else "FAIL",
            self.case.label, self.contract)
        if self.unsupported:
            return head + ": " + self.unsupported_reason
        return head + "\n" + self.report

    def explain(self):
        """The report, the case as text, and how to replay it."""
        return "%s\n%s\nreplay: moefuzz explain CASE (with the case above saved as CASE), or " \
               "moefuzz.Case.from_text(...) in Python\n" % (self, self.case.text)

    __repr__ = __str__


def _as_case(case):
    if isinstance(case, Case):
        return case
    if isinstance(case, (str, os.PathLike)):
        return Case.load(case)
    raise TypeError("moefuzz: expected a Case or a path, got %r" % type(case).__name__)


def _write_result(k, res, routing):
    """Copies what a kernel callable returned into its output (and routing) buffers."""
    if res is None:
        if routing:
            raise TypeError("moefuzz: routing=True, but the kernel returned nothing "
                            "(return (out, topk_ids, topk_weights))")
        return
    if isinstance(res, tuple):
        if not routing:
            raise TypeError("moefuzz: the kernel returned a tuple; pass routing=True to have "
                            "topk_ids and topk_weights checked, or return the output alone")
        if len(res) != 3:
            raise TypeError("moefuzz: expected (out, topk_ids, topk_weights), got %d items"
                            % len(res))
        out, ids, w = res
        T, K = k.p["T"], k.p["top_k"]
        k._ids[...] = _sized(ids, (T, K), "topk_ids")
        k._w[...] = _sized(w, (T, K), "topk_weights")
    elif routing:
        raise TypeError("moefuzz: routing=True, but the kernel returned the output alone")
    else:
        out = res
    k.out[...] = _sized(_bits(out), (k.p["T"], k.p["H"]), "out")


def _sized(a, shape, what):
    a = _host_array(a)
    if a.size != shape[0] * shape[1]:
        raise ValueError("moefuzz: %s has shape %s, the case needs %s" % (what, a.shape, shape))
    return a.reshape(shape)


def check(fn, case, contract="any-order", determinism=True, metamorphic=False, routing=False,
          attribute=True, supports=None, name="python"):
    """Runs fn as a kernel on the case and returns its Verdict, as `moefuzz check` checks a
    backend: the output poisoned before the call and guarded, two runs compared bit for bit
    where the contract is deterministic, the metamorphic relations with metamorphic=True,
    routing (topk_ids, topk_weights) checked with routing=True, a failure attributed. An
    exception raised by fn propagates (Unsupported excepted).

    fn raising Unsupported refuses the call: the case itself (the verdict is unsupported), or a
    metamorphic variant (rsf scaled, experts split into shards, ...), which is left out of its
    relation and reported as such; refusing the determinism run after computing the case is
    an error. supports(params) (params: the case file's parameters as strings, like
    KernelCall.params) returns None when fn handles the case, else the reason it does not: the
    same refusal, decided before the call."""
    case = _as_case(case)

    # the case's own weights: their addresses and the experts generated (a lazy case generates
    # the others, poisoned till then, when Case.bits asks for them)
    own = (tuple(case._pb.tensor(n, False)[0] for n in WEIGHTS), case._pb.experts_ready())
    dims = [None]  # (E_local, H, I) of the first call, the case's own

    def call(params, text, layout, pkey):
        # a call on the case's own weights arrays and shape (the case and its determinism run;
        # not the metamorphic variants: other problems, or a shard's view of the same arrays with
        # fewer experts) gets their float32 form widened once
        d = tuple(params[n] for n in ("E_local", "H", "I"))
        if dims[0] is None:
            dims[0] = d
        addrs = {e[0]: e[1] for e in layout}
        same = tuple(addrs.get(n) for n in WEIGHTS) == own[0] and d == dims[0]
        k = KernelCall._at(params, text, layout, pkey, case,
                           (case._calls_wide, own) if same else None)
        try:
            res = fn(k)
        except Unsupported as e:
            return str(e) or "unsupported"
        _write_result(k, res, routing)
        return None

    sup = None
    if supports is not None:
        def sup(text):
            r = supports(text)
            return None if r is None or r is True else str(r or "unsupported")

    d = case._pb.check((call, sup), contract, determinism, metamorphic, attribute, routing, name)
    return Verdict(d, case, contract)


def check_outputs(case, out, topk_ids=None, topk_weights=None, contract="any-order",
                  attribute=True):
    """The verdict on outputs computed elsewhere: out [T, H] (bf16 tensor, uint16 bits, or
    floats rounded to bf16) and optionally the routing (topk_ids [T, k], topk_weights [T, k])."""
    np = _np()
    case = _as_case(case)
    p = case.params
    T, H, K = int(p["T"]), int(p["H"]), int(p["top_k"])
    ob = _sized(_bits(out), (T, H), "out").astype(np.uint16).tobytes()
    ib = wb = None
    if (topk_ids is None) != (topk_weights is None):
        raise ValueError("moefuzz: topk_ids and topk_weights go together")
    if topk_ids is not None:
        ib = _sized(topk_ids, (T, K), "topk_ids").astype(np.int32).tobytes()
        wb = _sized(topk_weights, (T, K), "topk_weights").astype(np.float32).tobytes()
    d = case._pb.check_outputs(ob, ib, wb, contract, attribute)
    return Verdict(d, case, contract)


def assert_moe_close(out, case, topk_ids=None, topk_weights=None, contract="any-order"):
    """Where a MoE test calls assert_close(out, ref): raises AssertionError with moefuzz's
    report (the stages that failed, the first mismatches, the suspected cause, the case) when
    out is not admissible under the contract. An unsupported case is not a pass: it raises."""
    v = check_outputs(case, out, topk_ids, topk_weights, contract)
    if not v.passed or v.unsupported:
        raise AssertionError(v.explain())
    return v


from ._fuzz import fuzz, FuzzResult, Failure, KernelFault  # noqa: E402  (uses the names above)
