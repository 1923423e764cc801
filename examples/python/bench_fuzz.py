"""moefuzz.fuzz's speed next to `moefuzz fuzz` on the C CPU kernel, on this machine, one run:

    PYTHONPATH=BUILD/python /usr/bin/python3 examples/python/bench_fuzz.py BUILD/moefuzz [RUNS]

The Python kernel returns a precomputed correct output: a first campaign (in process, the
numpy MoE of moe_numpy.py) records the outputs in call order; the timed campaigns (worker
process, then in process) replay the same seed, so they draw the same inputs and return those
outputs. The C campaign runs `moefuzz fuzz --backend cpu --jobs 1` for as long as the Python
one took. Prints execs/s of each."""
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

import moefuzz

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import moe_numpy  # noqa: E402

tool = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
outs = []


def record(k):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        o = moe_numpy.moe_forward(k.tensors, k.params, "any-order", "")[0]
    outs.append(np.array(o))
    return outs[-1]


calls = [0]


def precomputed(k):
    calls[0] += 1
    return outs[calls[0] - 1]


null = open(os.devnull, "w")
with tempfile.TemporaryDirectory() as d:
    moefuzz.fuzz(record, runs=runs, time=None, seed=11, workdir=d + "/rec", in_process=True, out=null)
    res = {}
    for mode, inproc in (("worker process", False), ("in process", True)):
        calls[0] = 0
        r = moefuzz.fuzz(precomputed, runs=runs, time=None, seed=11, workdir=d + "/" + mode[:2],
                         in_process=inproc, out=null)
        assert not r.failures, r.summary
        res[mode] = r
        print("moefuzz.fuzz (%s): %d execs in %.1f s: %.1f execs/s" % (
            mode, r.stats["execs"], r.seconds, r.execs_per_s))
        if not inproc:
            print("  kernel calls that sent the worker their weights: %d, found them there: %d"
                  % (r.stats["weights_sent"], r.stats["weights_cached"]))
    secs = max(5, round(res["worker process"].seconds))
    p = subprocess.run([tool, "fuzz", "--backend", "cpu", "--jobs", "1", "--time", str(secs),
                        "--workdir", d + "/c"], capture_output=True, text=True)
    m = re.search(r"execs\s+(\d+) \(([\d.]+)/s\)", p.stdout)
    if not m:
        sys.exit("moefuzz fuzz gave no summary:\n" + p.stdout + p.stderr)
    print("moefuzz fuzz --backend cpu --jobs 1 --time %d: %s execs: %s execs/s" % (
        secs, m.group(1), m.group(2)))
    c = float(m.group(2))
    for mode, r in res.items():
        print("ratio (%s / C): %.2f" % (mode, r.execs_per_s / c))
    w, i = res["worker process"], res["in process"]
    print("the worker's extra cost: %.2f ms per exec" % (1e3 * (w.seconds - i.seconds) / runs))
