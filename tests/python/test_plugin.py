"""The pytest plugin (python/moefuzz/pytest_plugin.py): moe_case over corpus files and random
cases of models, failures reported with their saved case and replay, --moefuzz-case replays."""
import os
import sys

import numpy as np

import moefuzz

SRC = os.environ["MOEFUZZ_SOURCE_DIR"]
SEEDS = os.path.join(SRC, "corpus", "seeds")

TEST_FILE = """
import os, sys
import numpy as np
import moefuzz
sys.path.insert(0, %r)
import moe_numpy

def test_kernel(moe_case):
    def fn(k):
        with np.errstate(all="ignore"):
            return moe_numpy.moe_forward(k.tensors, k.params, "any-order",
                                         os.environ.get("BUG", ""))[0]
    v = moefuzz.check(fn, moe_case)
    assert v, v.explain()
""" % os.path.join(SRC, "examples", "python")

sys.path.insert(0, os.path.join(SRC, "examples", "python"))
import moe_numpy  # noqa: E402


def drop_rsf(k):
    with np.errstate(all="ignore"):
        return moe_numpy.moe_forward(k.tensors, k.params, "any-order", "drop-rsf")[0]


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "moefuzz.pytest_plugin", "-p", "no:cacheprovider",
                                         *args)


def test_moe_case_runs_corpus_files_and_random_model_cases(pytester, monkeypatch):
    pytester.makepyfile(test_k=TEST_FILE)
    files = ["--moefuzz-corpus", os.path.join(SEEDS, "deepseek-v3-rsf2.446.txt"),
             "--moefuzz-corpus", os.path.join(SEEDS, "mixtral-tiny.txt")]
    models = ["--moefuzz-models", "trinity-mini", "--moefuzz-random", "1", "--moefuzz-seed", "1"]
    r = run(pytester, "-v", *files, *models)
    r.assert_outcomes(passed=3)
    r.stdout.fnmatch_lines(["*test_kernel?trinity-mini#seed=1?*"])

    # rsf 2.446 fails, mixtral's rsf is 1; the model's random cases fail as the API says
    monkeypatch.setenv("BUG", "drop-rsf")
    model_fails = int(not moefuzz.check(drop_rsf, moefuzz.Case.random(1, model="trinity-mini")))
    assert model_fails == 1
    r = run(pytester, *files, *models, "--moefuzz-save", "saved")
    r.assert_outcomes(passed=1, failed=2)
    r.stdout.fnmatch_lines(["*routed_scaling_factor not applied*",
                            "*case *deepseek-v3-rsf2.446.txt saved: saved/*",
                            "replay: pytest 'test_k.py::test_kernel' --moefuzz-case saved/*"])
    saved = sorted(os.listdir(pytester.path / "saved"))
    assert len(saved) == 1 + model_fails and all(n.endswith(".txt") for n in saved)
    r = run(pytester, "--moefuzz-case", os.path.join("saved", saved[0]))
    r.assert_outcomes(failed=1)
    monkeypatch.delenv("BUG")
    r = run(pytester, "--moefuzz-case", os.path.join("saved", saved[0]))
    r.assert_outcomes(passed=1)


def test_default_corpus_and_bad_options(pytester, monkeypatch):
    pytester.makepyfile(test_k=TEST_FILE)
    monkeypatch.setenv("MOEFUZZ_SOURCE_DIR", SRC)
    n = sum(len([f for f in os.listdir(os.path.join(SRC, "corpus", d)) if f.endswith(".txt")])
            for d in ("seeds", "regress"))
    r = run(pytester, "--collect-only", "-q")
    r.stdout.fnmatch_lines(["%d tests collected*" % n])
    r = run(pytester, "--moefuzz-models", "no-such-model")
    assert r.ret == 4 and "unknown model 'no-such-model'" in r.stderr.str()
