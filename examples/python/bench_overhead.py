#!/usr/bin/env python3
"""bench_overhead.py MOEFUZZ [CASES]: the cost per case of checking the numpy example
(moe_numpy.py's moe_forward, contract any-order) through the exec protocol and through the
Python package's in-process API, side by side in one run, over CASES (default corpus/seeds).

  exec        `MOEFUZZ check -q --backend exec:'PYTHON moe_numpy.py' CASES`: wall time per case
  in-process  moefuzz.check(fn, case) per case: wall time, of which the kernel (time inside fn:
              the float32 weights it asks for, k.tensors, and moe_forward on them) and the
              check itself (moefuzz.check_outputs on the same output: reference and verdict);
              overhead = in-process - kernel - check, and where it goes: the call's wrapper
              (the C clock around the kernel call, less the time inside fn: the parameters,
              the views, the output rounded and copied) and the rest (the total less that
              clock and the verdict's own clock, ref_s: the inputs, the poison, the report,
              the reference's memory given back)

The exec path runs once; the in-process one REPS (3) times per case, each figure the median
of its repetitions (later checks of a case reuse the float32 weights of the first), and the
first check of each case alone, with the kernel's widening (k.tensors) apart. Each case is
loaded (its tensors generated) and released (its memory given back: its tensors and the float32
weights) outside the checks' clocks; both are timed and printed, once per case, as `moefuzz
check` pays them once per case. Prints one line per path and the per-case overhead; a
measurement, not a test.
"""
import os
import subprocess
import sys
import time
import weakref

import numpy as np

import moefuzz

REPS = 3
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import moe_numpy  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: bench_overhead.py MOEFUZZ [CASES]")
    mf = sys.argv[1]
    cases_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "..", "corpus",
                                                                   "seeds")
    # the cases the numpy kernel computes (moe_numpy.refusal: case format v2 up to ABI level 2;
    # the later levels' shared experts, FP8, ... are refused), on both paths
    paths = [p for p in moefuzz._core.paths(cases_dir)
             if moe_numpy.refusal(moefuzz.Case.load(p).params) is None]
    n = len(paths)

    t0 = time.perf_counter()
    r = subprocess.run([mf, "check", "-q", "--backend",
                        "exec:%s %s" % (sys.executable, os.path.join(HERE, "moe_numpy.py"))]
                       + paths, capture_output=True, text=True)
    t_exec = time.perf_counter() - t0
    summary = [l for l in r.stdout.splitlines() if l.startswith("moefuzz check:")]
    if r.returncode != 0 or not summary:
        sys.exit("exec run failed (exit %d):\n%s%s" % (r.returncode, r.stdout[-2000:], r.stderr))

    # each case REPS times in turn (moefuzz.check, then check_outputs on its output), and per
    # case the median of each figure: the machine is shared, and one slow repetition is noise
    cols = ("in", "kernel", "widen", "check", "over", "wrap", "rest")
    med = {c: 0.0 for c in cols}
    first = {c: 0.0 for c in cols}
    passed = 0
    t_load = t_release = 0.0
    for p in paths:
        t = time.perf_counter()
        case = moefuzz.Case.load(p)
        t_load += time.perf_counter() - t
        reps = {c: [] for c in cols}
        for _ in range(REPS):
            spent = [0.0]
            widen = [0.0]
            outs = []

            def fn(k):
                t = time.perf_counter()
                tensors = k.tensors
                widen[0] += time.perf_counter() - t
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    out = moe_numpy.moe_forward(tensors, k.params, "any-order", "")[0]
                spent[0] += time.perf_counter() - t
                outs.append(out)
                return out

            t = time.perf_counter()
            v = moefuzz.check(fn, case)
            t_in = time.perf_counter() - t
            t = time.perf_counter()
            moefuzz.check_outputs(case, outs[0])
            t_check = time.perf_counter() - t
            for c, x in zip(cols, (t_in, spent[0], widen[0], t_check,
                                   t_in - spent[0] - t_check, v.kernel_s - spent[0],
                                   t_in - v.kernel_s - v.ref_s)):
                reps[c].append(x)
        passed += v.passed
        for c in cols:
            med[c] += sorted(reps[c])[REPS // 2]
            first[c] += reps[c][0]
        # the case's memory given back here, not inside the next case's first check
        gone = weakref.ref(case)
        t = time.perf_counter()
        del case, v
        t_release += time.perf_counter() - t
        if gone() is not None:
            sys.exit("bench_overhead.py: the case outlived its release (a reference is kept)")

    ms = lambda s: 1000.0 * s / n  # noqa: E731
    print("%d cases of %s (those moe_numpy computes)" % (n, cases_dir))
    print("exec:       %.1f ms/case (%s)" % (ms(t_exec), summary[0].split(": ", 1)[1][:60]))
    print("in-process: %.1f ms/case (%d passed): kernel %.1f, check %.1f, overhead %.2f ms/case"
          % (ms(med["in"]), passed, ms(med["kernel"]), ms(med["check"]), ms(med["over"])))
    print("  overhead by the C clocks: call wrapper %.2f, the rest %.2f ms/case"
          % (ms(med["wrap"]), ms(med["rest"])))
    print("  the first check of each case alone: %.1f ms/case: kernel %.1f (of which k.tensors, "
          "the float32 widening, %.1f), check %.1f, overhead %.2f (call wrapper %.2f, the rest "
          "%.2f)" % (
              ms(first["in"]), ms(first["kernel"]), ms(first["widen"]), ms(first["check"]),
              ms(first["over"]), ms(first["wrap"]), ms(first["rest"])))
    print("  once per case, outside the checks: load (tensors generated) %.1f, release (memory "
          "given back) %.2f ms/case" % (ms(t_load), ms(t_release)))
    print("exec - in-process: %.1f ms/case" % (ms(t_exec) - ms(med["in"])))


if __name__ == "__main__":
    main()
