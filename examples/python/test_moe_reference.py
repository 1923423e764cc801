"""test_moe_reference.py: a MoE test as framework test suites write one, and what moefuzz adds.

`moe_reference` is the reference MoE tests in vLLM, SGLang or FlashInfer carry in PyTorch
(softmax router, top-k, optional renormalisation, a loop over experts with SiLU-GLU), written
here in numpy so that it runs without torch: fp32 arithmetic, the activation rounded to bf16
before the second GEMM as a bf16 kernel's is. Such tests end in

    torch.testing.assert_close(kernel_out, ref_out, atol=2e-2, rtol=0)

with a tolerance tuned until the test passes (vLLM's MoE tests: atol 2e-2, rtol 0; README,
"Measured"). Run with moefuzz's Python package importable:

    python3 -m pytest examples/python/test_moe_reference.py     # after `pip install .`
    PYTHONPATH=build/default/python /usr/bin/python3 -m pytest examples/python/test_moe_reference.py

What the tests show:
  * the reference meets moefuzz's `any-order` contract, metamorphic relations included, (fp32 arithmetic, any summation order,
    the activation rounded to bf16) on every seed it can express (softmax routing, no bias, no
    expert groups, rsf 1);
  * a kernel whose router computes the softmax and rounds the scores to bf16 (a low-precision
    router) passes the allclose test on corpus/seeds/near-ties.txt and tile-edges-17-129-63.txt,
    and fails moefuzz's check there: on near-ties a bf16 score ranks experts the exact scores do
    not, and the allowed error of every output element is known, not tuned;
  * `moefuzz.assert_moe_close(out, case)` is the drop-in for the assert_close line.
"""
import os

import numpy as np
import pytest

import moefuzz

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "corpus", "seeds")


def round_bf16(a):
    return moefuzz.bf16_to_f32(moefuzz.f32_to_bf16(a))


def moe_reference(x, logits, w13, w2, top_k, renormalize, bf16_router=False):
    """out [T, H] of a softmax-routed SiLU-GLU MoE: x [T, H], logits [T, E], w13 [E, 2I, H]
    (gate rows first), w2 [E, H, I]."""
    logits = logits.astype(np.float32)
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    scores = e / e.sum(axis=-1, keepdims=True)
    if bf16_router:
        scores = round_bf16(scores)  # the bug: the router's scores in bf16
    topk_ids = np.argsort(-scores, axis=-1, kind="stable")[:, :top_k]
    topk_w = np.take_along_axis(scores, topk_ids, axis=-1)
    if renormalize:
        topk_w = topk_w / topk_w.sum(axis=-1, keepdims=True)
    I = w2.shape[2]
    out = np.zeros((x.shape[0], w2.shape[1]), np.float32)
    for expert in range(w13.shape[0]):
        tok, slot = np.nonzero(topk_ids == expert)
        if len(tok) == 0:
            continue
        h = x[tok] @ w13[expert].T
        gate, up = h[:, :I], h[:, I:]
        act = round_bf16(gate / (np.float32(1) + np.exp(-gate)) * up)
        out[tok] += topk_w[tok, slot][:, None] * (act @ w2[expert].T)
    return out


def unsupported_reason(p):
    """None when moe_reference computes a case with parameters p (the case file's, as strings:
    Case.params, KernelCall.params), else why not: moefuzz.check's supports=."""
    if (p["score"] == "softmax" and p["bias"] == "none" and p["n_group"] == "1" and
            float(p["rsf"]) == 1 and p["layout"] == "gate_up" and p["E_local"] == p["E"] and
            p["activation"] == "silu_glu" and not moefuzz.v2_params(p)):
        return None
    return ("moe_reference: softmax routing only, without bias, groups, rsf, expert shards or "
            "the parameters of case format v2")


def run(case, bf16_router=False):
    p = case.params
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return moe_reference(case.x, case.logits, case.w13, case.w2, int(p["top_k"]),
                             p["renormalize"] == "true", bf16_router)


def as_kernel(bf16_router=False):
    """moe_reference as a kernel moefuzz.check runs (moefuzz hands it a KernelCall)."""
    def fn(k):
        return run(k, bf16_router)
    return fn


def test_the_reference_meets_the_any_order_contract():
    checked = 0
    for case in moefuzz.cases(SEEDS):
        v = moefuzz.check(as_kernel(), case, contract="any-order", metamorphic=True,
                          supports=unsupported_reason)
        assert v.passed, v.explain()
        checked += not v.unsupported
    # the seeds of case format v1 with softmax routing, no bias, no groups, rsf 1 (the v2 seeds,
    # e.g. the model twins with shared experts, are refused by unsupported_reason)
    assert checked == 10


@pytest.mark.parametrize("name", ["near-ties.txt", "tile-edges-17-129-63.txt"])
def test_allclose_misses_a_bf16_router_that_moefuzz_catches(name):
    case = moefuzz.Case.load(os.path.join(SEEDS, name))
    ref, out = run(case), run(case, bf16_router=True)
    np.testing.assert_allclose(out, ref, atol=2e-2, rtol=0)  # the framework test: passes
    v = moefuzz.check(as_kernel(bf16_router=True), case, contract="any-order",
                      supports=unsupported_reason)
    assert not v.passed and "output" in v.stages.split("+"), str(v)
    with pytest.raises(AssertionError, match="FAIL"):
        moefuzz.assert_moe_close(out, case)  # the drop-in for assert_close: fails
    moefuzz.assert_moe_close(ref, case)  # and the reference passes it
