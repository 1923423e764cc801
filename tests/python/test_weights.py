"""The expert weights between kernel calls: moefuzz.fuzz's worker is sent a call's per-expert
tensors only when their weights key (the exec protocol's, computed in C) changes, the worker
then reuses them, and a kernel sees the right weights after the key changes (a kernel that keeps
stale weights fails). Run by ctest python.package."""
import os
import re
import sys

import numpy as np

import moefuzz

SRC = os.environ["MOEFUZZ_SOURCE_DIR"]
sys.path.insert(0, os.path.join(SRC, "examples", "python"))
import moe_numpy  # noqa: E402

NULL = open(os.devnull, "w")

# four small cases run in this order: a0 and a1 share their weights (their tokens differ), b0
# has others of the same shapes, c0 has a0's again
CASES = (("a0", 1, 1), ("a1", 2, 1), ("b0", 1, 2), ("c0", 3, 1))


def write_cases(tmp_path):
    """The cases of CASES, in tmp_path/cases; returns that directory."""
    d = str(tmp_path / "cases")
    os.mkdir(d)
    for name, x_seed, w_seed in CASES:
        with open(os.path.join(d, name + ".txt"), "w") as f:
            f.write("T = 4\nH = 64\nI = 32\nE = 8\ntop_k = 2\nscore = softmax\nbias = none\n"
                    "renormalize = true\neps = 0\nrsf = 1\ngen.x = normal seed=%#x\n"
                    "gen.logits = normal seed=0x9\ngen.w13 = normal seed=%#x\n"
                    "gen.w2 = normal seed=%#x\ndefaults = E_local expert_offset n_group "
                    "topk_group group_rule rsf_site activation layout logits_dtype gen.bias\n"
                    % (x_seed, 0x100 + w_seed, 0x200 + w_seed))
    return d


def forward(k, tensors=None):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return moe_numpy.moe_forward(tensors or k.tensors, k.params, "any-order", "")[0]


def test_weights_key_is_the_cases_and_changes_with_the_weights(tmp_path):
    d = write_cases(tmp_path)
    cases = {n: moefuzz.Case.load(os.path.join(d, n + ".txt")) for n, _, _ in CASES}
    keys = {n: c.weights_key for n, c in cases.items()}
    assert keys["a0"] == keys["a1"] == keys["c0"] != keys["b0"]
    # the key a kernel call gets (computed from the call's own tensors) is the case's
    seen = []

    def fn(k):
        seen.append(k.weights_key)
        return forward(k)

    for n, c in cases.items():
        assert moefuzz.check(fn, c), n
        assert seen[-1] == keys[n]


def test_worker_gets_the_weights_only_when_their_key_changes(tmp_path):
    d = write_cases(tmp_path)
    log = str(tmp_path / "calls.txt")

    def fn(k):  # runs in the worker: records what each call got
        with open(log, "a") as f:
            f.write("%x %s\n" % (k.weights_key, k.bits("w13")[0, 0, :4].tolist()))
        return forward(k)

    r = moefuzz.fuzz(fn, runs=len(CASES), corpus=d, workdir=str(tmp_path / "w"),
                     meta_every=1000, out=NULL)
    assert not r.failures, r.summary
    calls = [line.split(" ", 1) for line in open(log).read().splitlines()]
    want = [moefuzz.Case.load(os.path.join(d, n + ".txt")) for n, _, _ in CASES]
    assert [int(key, 16) for key, _ in calls] == [c.weights_key for c in want]
    assert [w for _, w in calls] == [str(c.bits("w13")[0, 0, :4].tolist()) for c in want]
    # a0 sent, a1 cached, b0 sent, c0 sent again (the file held b0's)
    assert (r.stats["weights_sent"], r.stats["weights_cached"]) == (3, 1), r.stats
    assert r.stats["weights_reused"] == 1
    assert "3 kernel calls sent the worker their expert weights, 1 found them" in r.summary


def test_a_kernel_that_keeps_stale_weights_fails(tmp_path):
    d = write_cases(tmp_path)
    held = {}

    def stale(k):  # keeps the first weights it was given, as a cache that ignores the key would
        for n in ("w13", "w2"):
            held.setdefault(n, k.tensor(n).copy())
        return forward(k, dict(k.tensors, **held))

    r = moefuzz.fuzz(stale, runs=len(CASES), corpus=d, workdir=str(tmp_path / "w"),
                     meta_every=1000, out=NULL)
    # b0 alone has other weights than a0's: it, and only it, fails
    assert len(r.failures) == 1 and r.failures[0].signature.startswith("stage output"), \
        r.summary
    assert re.search(r"^gen.w13 = normal seed=0x0*102$", open(r.failures[0].path + ".txt").read(),
                     re.M)
    assert r.stats["passes"] == 3


def test_cached_weights_are_read_only_in_the_worker(tmp_path):
    d = write_cases(tmp_path)

    def scribble(k):  # would corrupt the weights the worker keeps for the next call
        k.bits("w13")[0, 0, 0] = 0
        return forward(k)

    r = moefuzz.fuzz(scribble, runs=len(CASES), corpus=d, workdir=str(tmp_path / "w"),
                     meta_every=1000, out=NULL)
    assert len(r.failures) == len(CASES)
    assert all("read-only" in f.signature for f in r.failures), r.summary


def test_differ_sampled_and_exact():
    # the parent's pre-check: a sampled difference proves one; only the exact comparison, or the
    # key, proves equality
    a = np.arange(4096, dtype=np.uint16)
    b = a.copy()
    addr = lambda x: x.__array_interface__["data"][0]  # noqa: E731
    assert not moefuzz._core.differ(addr(a), addr(b), a.nbytes, True)
    assert not moefuzz._core.differ(addr(a), addr(b), a.nbytes, False)
    b[5] ^= 1  # a word between the samples (every 64 bytes of the 8192)
    assert not moefuzz._core.differ(addr(a), addr(b), a.nbytes, True)
    assert moefuzz._core.differ(addr(a), addr(b), a.nbytes, False)
    b[5] ^= 1
    b[-1] ^= 1  # the last bytes are always compared
    assert moefuzz._core.differ(addr(a), addr(b), a.nbytes, True)


def test_float32_weights_are_widened_once_while_they_stay(tmp_path):
    # k.w13 and k.w2 (float32) are kept between calls while the weights stay: the same
    # read-only arrays, equal to the call's own bits widened; new weights, new arrays
    d = write_cases(tmp_path)
    log = str(tmp_path / "calls.txt")
    last = []

    def fn(k):  # in the worker: compares with the arrays of its previous call
        for n in ("w13", "w2"):
            assert not k.tensor(n).flags.writeable
            assert np.array_equal(k.tensor(n), moefuzz.bf16_to_f32(k.bits(n)))
        with open(log, "a") as f:
            f.write("%d\n" % (bool(last) and k.w13 is last[-1]))
        last.append(k.w13)
        return forward(k)

    r = moefuzz.fuzz(fn, runs=len(CASES), corpus=d, workdir=str(tmp_path / "w"),
                     meta_every=1000, out=NULL)
    assert not r.failures and r.stats["passes"] == len(CASES), r.summary
    # a1 gets a0's arrays; b0 and c0 (after b0) new ones
    assert open(log).read().split() == ["0", "1", "0", "0"]
    # moefuzz.check: the calls on the case's own weights share the case's float32 form
    case = moefuzz.Case.load(os.path.join(d, "a0.txt"))
    got = []
    for _ in range(2):
        assert moefuzz.check(lambda k: got.append(k.w13) or forward(k), case)
    assert got[0] is got[1] and np.array_equal(got[0], case.w13)
    assert not case.w13.flags.writeable
    # the metamorphic relations' expert shards view the same arrays with fewer experts: their
    # float32 weights have the shard's shape, not the case's
    shapes = []

    def shaped(k):
        shapes.append((k.tensor("w13").shape, k.bits("w13").shape, k.params["E_local"]))
        return forward(k)
    moefuzz.check(shaped, case, metamorphic=True)
    assert all(a == b for a, b, _ in shapes), shapes
    assert len({e for _, _, e in shapes}) > 1, shapes  # a shard ran


def test_check_leaves_a_lazy_cases_unroutable_experts_poisoned():
    # 512 experts of 1.5 MiB: a lazy case, whose one routable expert is generated and the others
    # poisoned; moefuzz.check (its weights bookkeeping included) must not generate them
    case = moefuzz.Case.from_text(
        "T = 1\nH = 512\nI = 512\nE = 512\ntop_k = 1\nscore = softmax\nbias = none\n"
        "renormalize = false\neps = 0\nrsf = 1\ndefaults = E_local expert_offset n_group "
        "topk_group group_rule rsf_site activation layout logits_dtype gen.x gen.logits gen.bias "
        "gen.w13 gen.w2\n")
    ready = case._pb.experts_ready()
    assert 1 <= ready < 512
    v = moefuzz.check(lambda k: np.zeros((1, 512), np.float32), case, determinism=False,
                      attribute=False)
    assert not v.passed  # zeros are not the output
    assert case._pb.experts_ready() == ready
