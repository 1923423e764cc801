"""moefuzz.fuzz: a campaign on a Python callable finds an injected bug and saves a case the
moefuzz tool replays; a crashing or hanging kernel is a finding and the campaign goes on; a
correct kernel gives no failure. Run by ctest python.package (MOEFUZZ_TOOL: the built tool)."""
import os
import re
import subprocess
import sys

import numpy as np

import moefuzz

SRC = os.environ["MOEFUZZ_SOURCE_DIR"]
TOOL = os.environ["MOEFUZZ_TOOL"]
ADAPTER = "exec:%s %s" % (sys.executable, os.path.join(SRC, "examples", "python", "moe_numpy.py"))
sys.path.insert(0, os.path.join(SRC, "examples", "python"))
import moe_numpy  # noqa: E402


def numpy_kernel(bug=""):
    def fn(k):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return moe_numpy.moe_forward(k.tensors, k.params, "any-order", bug)[0]
    return fn


# a bug that depends on the case, not on the call: an odd token count (about half the cases, so
# a 60-run campaign meets it whatever the generator draws)
def crash_on_odd_tokens(k):
    if int(k.p["T"]) % 2 == 1:
        os.abort()
    return numpy_kernel()(k)


def hang_on_odd_tokens(k):
    if int(k.p["T"]) % 2 == 1:
        import time
        time.sleep(60)
    return numpy_kernel()(k)


def test_finds_dropped_rsf_and_the_tool_replays_it(tmp_path):
    r = moefuzz.fuzz(numpy_kernel("drop-rsf"), runs=60, seed=5, workdir=str(tmp_path),
                     backend=ADAPTER, out=open(os.devnull, "w"))
    assert r.stats["execs"] == 60 and r.failures
    rsf = [f for f in r.failures if "rsf_dropped" in f.signature and f.signature.startswith(
        "stage output")]
    assert rsf, [f.signature for f in r.failures]
    assert "failures" in r.summary and rsf[0].replay in r.summary
    f = rsf[0]
    assert os.path.basename(f.path).startswith("crash-") and os.path.exists(f.path + ".txt")
    # the tool replays the saved input (and its text form) on the same kernel as an exec adapter
    for path in (f.path, f.path + ".txt"):
        p = subprocess.run([TOOL, "repro", "--backend", ADAPTER, path], capture_output=True,
                           text=True, env=dict(os.environ, MOE_NUMPY_BUG="drop-rsf"))
        assert p.returncode == 1, p.stdout + p.stderr
        assert "routed_scaling_factor not applied" in p.stdout, p.stdout
        # without the bug the same case passes: the failure is the kernel's
        p = subprocess.run([TOOL, "repro", "--backend", ADAPTER, path], capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stdout + p.stderr


def test_correct_kernel_has_no_failure(tmp_path):
    r = moefuzz.fuzz(numpy_kernel(), runs=80, seed=7, workdir=str(tmp_path),
                     out=open(os.devnull, "w"))
    # the numpy kernel refuses the cases of ABI levels 3 to 8 (much of the random mix and of its
    # mutations: quantized weights, shared experts, routing variants, expert maps, shards; a
    # refused metamorphic variant is left out); every other case must pass, and a fifth of them
    # at least run
    s = r.stats
    assert s["execs"] == 80 and s["passes"] + s["skips"] == 80 and s["passes"] >= 16, s
    assert not r.failures, r.summary
    assert r.stats["cells"] > 10 and os.listdir(os.path.join(str(tmp_path), "corpus"))


def test_in_process_finds_the_bug_too(tmp_path):
    r = moefuzz.fuzz(numpy_kernel("drop-rsf"), runs=60, seed=5, workdir=str(tmp_path),
                     in_process=True, out=open(os.devnull, "w"))
    assert any("rsf_dropped" in f.signature for f in r.failures)


def test_crash_is_a_finding_and_the_campaign_goes_on(tmp_path):
    r = moefuzz.fuzz(crash_on_odd_tokens, runs=60, seed=5, workdir=str(tmp_path),
                     out=open(os.devnull, "w"))
    crashes = [f for f in r.failures if "SIGABRT" in f.signature]
    assert crashes, [f.signature for f in r.failures]
    assert r.stats["execs"] == 60 and r.stats["passes"] > 0
    T = re.search(r"^T = (\d+)$", open(crashes[0].path + ".txt").read(), re.M)
    assert T and int(T.group(1)) % 2 == 1
    assert all(f.kind == "crash" for f in crashes)


def test_hang_is_a_finding_and_the_campaign_goes_on(tmp_path):
    r = moefuzz.fuzz(hang_on_odd_tokens, runs=60, seed=5, workdir=str(tmp_path), timeout=0.5,
                     out=open(os.devnull, "w"))
    hangs = [f for f in r.failures if f.kind == "timeout"]
    assert hangs, [f.signature for f in r.failures]
    assert all(os.path.basename(f.path).startswith("timeout-") for f in hangs)
    assert r.stats["execs"] == 60 and r.stats["passes"] > 0


def test_exception_in_the_kernel_is_a_finding(tmp_path):
    def broken(k):
        raise ZeroDivisionError("kernel bug")
    r = moefuzz.fuzz(broken, runs=5, seed=1, workdir=str(tmp_path), corpus=os.path.join(
        SRC, "corpus", "seeds", "mixtral-tiny.txt"), out=open(os.devnull, "w"))
    checked = r.stats["execs"] - r.stats["skips"]  # skips: over the work budget
    assert checked >= 1 and len(r.failures) == checked
    assert "ZeroDivisionError" in r.failures[0].signature
