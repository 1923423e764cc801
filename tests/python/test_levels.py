"""A Python callable speaks the header's ABI feature level: every parameter and tensor of a case
of format v2 reaches it, as a C kernel of that level gets them (kernels/include/moefuzz/
kernel_abi.h), and a callable that refuses a call (moefuzz.Unsupported) is
not sent what it refused.

Run by ctest (python.package) with PYTHONPATH at the build tree's package and MOEFUZZ_SOURCE_DIR
at the source tree."""
import os

import numpy as np
import pytest

import moefuzz

SRC = os.environ["MOEFUZZ_SOURCE_DIR"]
SEEDS = os.path.join(SRC, "corpus", "seeds")
PACKED = ("w13_q", "w13_sc", "w2_q", "w2_sc")


def grab(store):
    """A kernel that records what its first call got, then refuses the case."""
    def fn(k):
        store.update(names=k.names, params=dict(k.params), p=dict(k.p), key=k.weights_key,
                     bits={n: np.array(k.bits(n)) for n in k.names},
                     f32={n: np.array(k.tensor(n)) for n in k.names})
        raise moefuzz.Unsupported("recorded")
    return fn


def v2_seeds():
    return sorted(f for f in os.listdir(SEEDS) if f.endswith(".txt") and
                  moefuzz.v2_params(moefuzz.Case.load(os.path.join(SEEDS, f)).params))


def e2m1(code):
    mag = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0][code & 7]
    return -mag if code & 8 else mag


E2M1 = np.array([e2m1(c) for c in range(16)], np.float32)


def e4m3_round(v):
    """v rounded to e4m3 (float8_e4m3fn) to nearest, ties to the even code, saturating at 448:
    how a case's bf16 weights reach an FP8 kernel (reference/fp8.h, mf_e4m3_from_bf16)."""
    pos = moefuzz.e4m3_to_f32(np.arange(0x7f, dtype=np.uint8))  # codes 0..0x7e: 0..448
    a = np.minimum(np.abs(v.astype(np.float64)), 448.0).ravel()
    hi = np.clip(np.searchsorted(pos, a), 1, len(pos) - 1)
    lo = hi - 1
    d_lo, d_hi = a - pos[lo], pos[hi] - a
    pick = np.where((d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0)), hi, lo)
    return (np.sign(v.ravel()) * pos[pick]).astype(np.float32).reshape(v.shape)


def mxfp4_decode(q, sc, K):
    """Values of MXFP4's packed rows (kernel_abi.h, mf_kernel_mxfp4): low nibble first, one
    UE8M0 scale per 32 along K."""
    codes = np.stack([q & 15, q >> 4], axis=-1).reshape(*q.shape[:-1], -1)[..., :K]
    scale = np.exp2(sc.astype(np.float64) - 127).repeat(32, axis=-1)[..., :K]
    return E2M1[codes].astype(np.float64) * scale


def test_there_are_v2_seeds_of_every_level():
    levels = set()
    for f in v2_seeds():
        p = moefuzz.Case.load(os.path.join(SEEDS, f)).params
        levels |= {lv for k, (lv, _) in moefuzz._core.v2_params().items() if k in
                   moefuzz.v2_params(p)}
    assert levels >= {2, 3, 4, 5, 6, 7, 8}, levels


@pytest.mark.parametrize("name", v2_seeds())
def test_a_v2_case_reaches_the_callable_whole(name):
    case = moefuzz.Case.load(os.path.join(SEEDS, name))
    got = {}
    v = moefuzz.check(grab(got), case)
    assert v.unsupported and v.unsupported_reason == "recorded", str(v)
    # its parameters, text for text, and the v2 ones as numbers
    assert {k: got["params"].get(k) for k in case.params} == case.params
    for k, val in moefuzz.v2_params(case.params).items():
        assert got["p"][k] != 0, (k, val)
    # every tensor of the case, bit for bit (e4m3 codes: the case's bf16 values on the grid)
    have = {n for n in moefuzz.TENSOR_NAMES if case.bits(n) is not None}
    assert set(got["names"]) - set(PACKED) == have
    wf = case.params["weight_format"]
    for n in have:
        want = case.tensor(n)
        if wf == "fp8_block" and n in ("w13", "w2"):
            assert got["bits"][n].dtype == np.uint8
            want = e4m3_round(want)
        elif wf == "mxfp4" and n in ("w13", "w2"):
            continue  # the values of the packing, below
        assert np.array_equal(got["f32"][n], want, equal_nan=want.dtype.kind == "f"), n
    # an mxfp4 case's weights: the bf16 values of their packed form, which the call also has;
    # each within e2m1's widest spacing (2, between 4 and 6) times the block's scale of the
    # case's own values
    if wf == "mxfp4":
        H, I = int(case.params["H"]), int(case.params["I"])
        for w, K in (("w13", H), ("w2", I)):
            sc = got["bits"][w + "_sc"]
            dec = mxfp4_decode(got["bits"][w + "_q"], sc, K)
            assert np.array_equal(dec.astype(np.float32), got["f32"][w]), w
            step = np.exp2(sc.astype(np.float64) - 127).repeat(32, axis=-1)[..., :K]
            assert np.all(np.abs(dec - case.tensor(w)) <= 2 * step), w
    else:
        assert not set(got["names"]) & set(PACKED)
    # and the weights key is the exec protocol's, over every per-expert tensor
    assert got["key"] == case.weights_key


def test_the_weights_key_covers_the_scales_and_the_packing():
    """Two calls whose w13 and w2 agree but whose scales (fp8) differ get different keys."""
    keys = []

    def fn(k):
        keys.append(k.weights_key)
        raise moefuzz.Unsupported("recorded")

    base = open(os.path.join(SEEDS, "fp8-ue8m0-blocks32.txt")).read()
    moefuzz.check(fn, moefuzz.Case.from_text(base))
    moefuzz.check(fn, moefuzz.Case.from_text(base + "poke = w13_s 0 0x3f000000\n"))
    assert len(keys) == 2 and keys[0] != keys[1]


def test_torch_gets_fp8_codes_as_float8():
    torch = pytest.importorskip("torch", reason="torch is not installed: the torch-only test")
    case = moefuzz.Case.load(os.path.join(SEEDS, "fp8-ue8m0-blocks32.txt"))
    got = {}

    def fn(k):
        t = k.torch("w13")
        got["dtype"], got["values"] = t.dtype, t.float().numpy()
        raise moefuzz.Unsupported("recorded")

    moefuzz.check(fn, case)
    assert got["dtype"] == torch.float8_e4m3fn
    assert np.array_equal(got["values"], e4m3_round(case.tensor("w13")))
    # torch's float8_e4m3fn cast of the case's values is the same rounding
    cast = torch.from_numpy(case.tensor("w13").copy()).to(torch.float8_e4m3fn).float().numpy()
    assert np.array_equal(got["values"], cast)


def round_trip(case):
    """The case rebuilt by Case.from_tensors from the tensors a kernel call of it gets."""
    got = {}
    moefuzz.check(grab(got), case)
    b = dict(got["bits"])
    params = {k: v for k, v in case.params.items() if k not in ("T", "H", "I", "E", "E_local")}
    params["bias_dtype"] = params.pop("bias")
    x, logits, w13, w2 = (b.pop(n) for n in ("x", "logits", "w13", "w2"))
    return moefuzz.Case.from_tensors(x, logits, w13, w2, bias=b.pop("bias", None), tensors=b,
                                     **params)


@pytest.mark.parametrize("name", v2_seeds())
def test_from_tensors_builds_every_v2_case(name):
    case = moefuzz.Case.load(os.path.join(SEEDS, name))
    again = round_trip(case)
    assert again.params == case.params
    assert again.weights_key == case.weights_key  # every per-expert tensor, as a kernel gets it
    for n in moefuzz.TENSOR_NAMES:
        a, b = case.tensor(n), again.tensor(n)
        assert (a is None) == (b is None), n
        if a is not None and not (n in ("w13", "w2") and case.params["weight_format"] != "bf16"):
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), n


def test_from_tensors_names_a_missing_or_extra_tensor():
    case = moefuzz.Case.load(os.path.join(SEEDS, "expert-map-holes-scrambled.txt"))
    p = {k: v for k, v in case.params.items() if k not in ("T", "H", "I", "E", "E_local")}
    p["bias_dtype"] = p.pop("bias")
    args = [case.bits(n) for n in ("x", "logits", "w13", "w2")]
    with pytest.raises(moefuzz.MoefuzzError, match="tensor expert_map: these parameters call"):
        moefuzz.Case.from_tensors(*args, bias=case.bits("bias"), **p)
    with pytest.raises(moefuzz.MoefuzzError, match="tensor b13: a case of these parameters"):
        moefuzz.Case.from_tensors(*args, bias=case.bits("bias"), tensors={
            "expert_map": case.bits("expert_map"), "b13": case.bits("w13")[:, :, 0]}, **p)
    with pytest.raises(moefuzz.MoefuzzError, match="expert_map: expected integers"):
        moefuzz.Case.from_tensors(*args, bias=case.bits("bias"), tensors={
            "expert_map": case.bits("expert_map").astype(np.float32)}, **p)
    bad = case.bits("expert_map").copy()
    bad[bad >= 0] = 0  # every local index but 0 missing: not a placement map
    with pytest.raises(moefuzz.MoefuzzError, match="expert_map"):
        moefuzz.Case.from_tensors(*args, bias=case.bits("bias"), tensors={"expert_map": bad},
                                  **p)
