"""The moefuzz Python package's in-process API (python/moefuzz): cases, check, check_outputs,
assert_moe_close, against the numpy MoE of examples/python/moe_numpy.py.

Run by ctest (python.api, tests/CMakeLists.txt) with PYTHONPATH at the build tree's package and
MOEFUZZ_SOURCE_DIR at the source tree."""
import os
import re
import sys

import numpy as np
import pytest

import moefuzz

SRC = os.environ["MOEFUZZ_SOURCE_DIR"]
SEEDS = os.path.join(SRC, "corpus", "seeds")
REGRESS = os.path.join(SRC, "corpus", "regress")
sys.path.insert(0, os.path.join(SRC, "examples", "python"))
import moe_numpy  # noqa: E402  the example adapter's forward: t, meta -> out, ids, weights

RSF_CASES = ["deepseek-v3-rsf2.446.txt", "kimi-linear-tiny.txt", "rsf-on-output.txt"]


def numpy_kernel(bug="", mode="any-order", routing=False):
    def fn(k):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out, ids, w = moe_numpy.moe_forward(k.tensors, k.params, mode, bug)
        return (out, ids, w) if routing else out
    return fn


def seed(name):
    return moefuzz.Case.load(os.path.join(SEEDS, name))


def test_every_seed_and_regression_passes_with_routing():
    """Every case reaches the callable (a Python callable speaks the header's ABI level); the
    numpy MoE computes the v2 parameters of level 2 and refuses the rest, by raising
    moefuzz.Unsupported with moe_numpy.refusal's reason."""
    n, checked, refused, v2_run = 0, 0, 0, 0
    for case in list(moefuzz.cases(SEEDS)) + list(moefuzz.cases(REGRESS)):
        v = moefuzz.check(numpy_kernel(routing=True), case, routing=True)
        why = moe_numpy.refusal(case.params)
        if why:
            assert v.unsupported and v.unsupported_reason == why, str(v)
            refused += 1
        else:
            assert v.passed and not v.unsupported, str(v)
            assert v.stages == "-"
            v2_run += case.text.startswith("# moefuzz case (format v2)")
        n += 1
        checked += v.elems_checked
    assert checked > 0 and refused > 0 and v2_run >= 5, (refused, v2_run)
    assert n == len([f for f in os.listdir(SEEDS) if f.endswith(".txt")]) + \
        len([f for f in os.listdir(REGRESS) if f.endswith(".txt")])


@pytest.mark.parametrize("name", ["exact-ties.txt", "deepseek-v3-rsf2.446.txt"])
def test_metamorphic_relations_run_and_pass(name):
    v = moefuzz.check(numpy_kernel(), seed(name), metamorphic=True)
    assert v.passed and "metamorphic" in v.report and not v.metamorphic_violated, str(v)


def test_metamorphic_relations_catch_an_ignored_parameter_and_honour_supports():
    case = seed("mixtral-tiny.txt")  # rsf 1: the dropped rsf leaves the case's output right
    assert case.params["rsf"] == "1"
    assert moefuzz.check(numpy_kernel("drop-rsf"), case).passed
    v = moefuzz.check(numpy_kernel("drop-rsf"), case, metamorphic=True)
    assert not v.passed and v.metamorphic_violated
    assert re.search(r"rsf-scaling +(identity|independent) +VIOLATED", v.report), v.report
    # a kernel that refuses rsf != 1 in supports= is not sent the rsf-scaling variant
    v = moefuzz.check(numpy_kernel("drop-rsf"), case, metamorphic=True,
                      supports=lambda p: None if p["rsf"] == "1" else "rsf != 1")
    assert v.passed and not re.search(r"rsf-scaling +\w+ +VIOLATED", v.report), str(v)
    # refusing a variant by raising Unsupported inside the call leaves it out, as supports=
    # does (an exec adapter's "unsupported" answer to a variant likewise), and the report says so

    def refuses_variants(k):
        if k.params["rsf"] != "1":
            raise moefuzz.Unsupported("rsf != 1")
        return numpy_kernel("drop-rsf")(k)

    v = moefuzz.check(refuses_variants, case, metamorphic=True)
    assert v.passed and "metamorphic" in v.report, str(v)
    assert not re.search(r"rsf-scaling +(identity|independent)", v.report), v.report
    assert re.search(r"rsf-scaling +left out +1 transformed runs refused by the kernel \(rsf != 1\)",
                     v.report), v.report
    # a kernel that ran the case and refuses it on the determinism run is an error
    calls = [0]

    def fickle(k):
        calls[0] += 1
        if calls[0] == 2:
            raise moefuzz.Unsupported("changed its mind")
        return numpy_kernel()(k)

    with pytest.raises(moefuzz.MoefuzzError, match="determinism run: changed its mind"):
        moefuzz.check(fickle, case, contract="cpu-scalar")  # deterministic: two runs


@pytest.mark.parametrize("name", RSF_CASES)
def test_dropped_rsf_fails_and_is_attributed(name):
    v = moefuzz.check(numpy_kernel("drop-rsf"), seed(name))
    assert not v.passed
    assert "output" in v.stages.split("+")
    assert "routed_scaling_factor not applied" in v.attribution
    assert "FAIL" in str(v) and v.n_bad["output"] > 0


def test_unwritten_output_is_caught_by_the_poison():
    def partial(k):
        out = numpy_kernel()(k)
        k.out[...] = out
        k.out[-1, -1] = 0x7FA5  # leave the last element as moefuzz poisoned it
        return None

    v = moefuzz.check(partial, seed("mixtral-tiny.txt"))
    assert not v.passed and v.n_bad["unwritten"] == 1, str(v)


def test_nondeterminism_is_caught_where_the_contract_is_deterministic():
    calls = []

    def noisy(k):
        out = numpy_kernel()(k)
        calls.append(1)
        out = out.copy()
        out[0, len(calls) % out.shape[1]] ^= 1  # a different last bit on each run
        return out

    case = seed("mixtral-tiny.txt")
    v = moefuzz.check(noisy, case, contract="cpu-scalar")
    assert "determinism" in v.stages.split("+") and len(calls) == 2, str(v)
    calls.clear()
    v = moefuzz.check(noisy, case, contract="cpu-scalar", determinism=False)
    assert "determinism" not in v.stages.split("+") and len(calls) == 1


def test_wrong_routing_is_caught_when_reported():
    def swapped(k):
        out, ids, w = numpy_kernel(routing=True)(k)
        ids = ids.copy()
        ids[:, [0, 1]] = ids[:, [1, 0]]
        return out, ids, w  # weights no longer belong to their ids

    v = moefuzz.check(swapped, seed("deepseek-v3-rsf2.446.txt"), routing=True)
    assert not v.passed and "routing-weights" in v.stages, str(v)


def test_kernel_exceptions_propagate_and_unsupported_is_an_answer():
    def broken(k):
        raise ZeroDivisionError("inside the kernel")

    with pytest.raises(ZeroDivisionError, match="inside the kernel"):
        moefuzz.check(broken, seed("mixtral-tiny.txt"))

    def refuses(k):
        raise moefuzz.Unsupported("no sigmoid routing here")

    v = moefuzz.check(refuses, seed("deepseek-v3-rsf2.446.txt"))
    assert v.unsupported and v.unsupported_reason == "no sigmoid routing here"
    with pytest.raises(TypeError, match="routing=True"):
        moefuzz.check(numpy_kernel(routing=True), seed("mixtral-tiny.txt"))


def test_check_outputs_and_assert_moe_close():
    case = seed("deepseek-v3-rsf2.446.txt")
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        meta = dict(case.params)
        tensors = {n: case.tensor(n) for n in moefuzz.TENSORS if case.tensor(n) is not None}
        out, ids, w = moe_numpy.moe_forward(tensors, meta, "any-order", "")
    v = moefuzz.assert_moe_close(out, case, topk_ids=ids, topk_weights=w)
    assert v.passed
    v = moefuzz.check_outputs(case, out, topk_ids=ids, topk_weights=w * np.float32(1.01))
    assert not v.passed and v.stages == "routing-weights", str(v)
    # float outputs are rounded to bf16 by moefuzz: the same verdict
    assert moefuzz.check_outputs(case, moefuzz.bf16_to_f32(out)).passed
    bad = out.copy()
    bad[1, 7] ^= 0x0080  # one element doubled or halved (the exponent's lowest bit)
    with pytest.raises(AssertionError) as e:
        moefuzz.assert_moe_close(bad, case)
    msg = str(e.value)
    assert "FAIL" in msg and "output" in msg and "T = 4" in msg and "replay" in msg
    with pytest.raises(ValueError, match="shape"):
        moefuzz.check_outputs(case, out[:2])


def test_cases_from_text_random_and_tensors():
    a = moefuzz.Case.random(7, model="mixtral-8x7b")
    b = moefuzz.Case.random(7, model="mixtral-8x7b")
    assert a.text == b.text and np.array_equal(a.bits("w13"), b.bits("w13"))
    assert a.params["score"] == "softmax" and a.params["top_k"] == "2" and a.params["E"] == "8"
    c = moefuzz.Case.from_text(a.text)
    assert np.array_equal(c.bits("x"), a.bits("x"))
    r = moefuzz.Case.random(3)
    assert moefuzz.check(numpy_kernel(), r).passed
    # the caller's own tensors (bf16 logits and bias here): the same problem, the same verdicts
    s = seed("bf16-logits-bf16-bias.txt")
    p = s.params
    assert p["bias"] == "bf16" and p["logits_dtype"] == "bf16"
    keys = ("top_k", "score", "n_group", "topk_group", "group_rule", "renormalize",
            "eps", "rsf", "rsf_site")
    own = moefuzz.Case.from_tensors(s.bits("x"), s.logits, s.bits("w13"), s.bits("w2"),
                                    bias=s.bias, bias_dtype=p["bias"],
                                    logits_dtype=p["logits_dtype"],
                                    **{k: p[k] for k in keys})
    assert own.params == p
    assert moefuzz.check(numpy_kernel(), own).passed
    v = moefuzz.check(numpy_kernel("drop-rsf"), own)
    assert not v.passed and "routed_scaling_factor" in v.attribution
    with pytest.raises(moefuzz.MoefuzzError, match="x holds values bf16 cannot represent"):
        moefuzz.Case.from_tensors(s.x + np.float32(1e-3), s.logits, s.w13, s.w2, top_k=2)
    with pytest.raises(moefuzz.MoefuzzError, match="unknown case parameter"):
        moefuzz.Case.from_tensors(s.x, s.logits, s.w13, s.w2, topk=2)
    with pytest.raises(moefuzz.MoefuzzError):
        moefuzz.Case.from_tensors(s.x, s.logits, s.w13, s.w2[:, :3], top_k=2)


def test_inputs_are_read_only_and_check_is_not_reentrant():
    case = seed("mixtral-tiny.txt")

    def writes_input(k):
        k.bits("x")[0, 0] = 0
        return numpy_kernel()(k)

    with pytest.raises(ValueError, match="read-only"):
        moefuzz.check(writes_input, case)
    with pytest.raises(ValueError, match="read-only"):
        case.bits("w13")[0, 0, 0] = 0

    def nested(k):
        return moefuzz.check(numpy_kernel(), case)

    with pytest.raises(moefuzz.MoefuzzError, match="inside a checked kernel"):
        moefuzz.check(nested, case)
    assert moefuzz.check(numpy_kernel(), case).passed  # and the next check runs


def test_bad_input_is_a_clear_error():
    with pytest.raises(moefuzz.MoefuzzError, match="no-such"):
        moefuzz.Case.load("/no-such/case.txt")
    with pytest.raises(moefuzz.MoefuzzError, match="model"):
        moefuzz.Case.random(1, model="no-such-model")
    with pytest.raises(moefuzz.MoefuzzError, match="contract"):
        moefuzz.check(numpy_kernel(), seed("mixtral-tiny.txt"), contract="no-such")
    with pytest.raises(moefuzz.MoefuzzError):
        moefuzz.Case.from_text("T = 0\n")
    assert "any-order" in moefuzz.contracts() and "deepseek-v3" in moefuzz.models()


def test_torch_tensors_through_dlpack():
    torch = pytest.importorskip("torch", reason="torch is not installed: the torch-only test")
    case = seed("mixtral-tiny.txt")
    x = case.torch("x")
    assert x.dtype == torch.bfloat16 and tuple(x.shape) == tuple(case.x.shape)
    assert np.array_equal(x.float().numpy(), case.x)

    def torch_kernel(k):
        out = numpy_kernel()(k)
        return torch.from_numpy(moefuzz.bf16_to_f32(out)).to(torch.bfloat16)

    assert moefuzz.check(torch_kernel, case).passed
