"""moefuzz.fuzz: a fuzz campaign on a Python kernel callable (see fuzz's doc)."""
import hashlib
import multiprocessing
import os
import signal
import sys
import time as _time
import traceback

from . import _core

ARTIFACT_NOTE = "moefuzz.fuzz campaign on a Python callable"


class KernelFault(Exception):
    """The kernel crashed, hung or raised in its worker (or raised in process): a finding."""

    def __init__(self, kind, detail):
        super().__init__("%s: %s" % (kind, detail))
        self.kind, self.detail = kind, detail


class Failure:
    """One failing input: kind (crash-, timeout- as libFuzzer names them), signature, the saved
    path, the report (moefuzz's diagnosis and the case as text), the replay command."""

    def __init__(self, kind, signature, path, report, replay):
        self.kind, self.signature, self.path = kind, signature, path
        self.report, self.replay = report, replay

    def __repr__(self):
        return "Failure(%s: %s)" % (self.path, self.signature)


class FuzzResult:
    """What a campaign came to: failures (Failure, one per failing input), stats (the counts of
    src/fuzz.c: execs, passes, skips, fails, errors, cells, ...), execs_per_s, summary (text)."""

    def __init__(self, failures, stats, seconds, summary, workdir):
        self.failures, self.stats, self.seconds = failures, stats, seconds
        self.summary, self.workdir = summary, workdir
        self.execs_per_s = stats["execs"] / seconds if seconds > 0 else 0.0

    def __bool__(self):
        return not self.failures

    def __repr__(self):
        return "FuzzResult(%d execs, %d failures)" % (self.stats["execs"], len(self.failures))


def _worker(conn, fn, routing):
    """The worker process: runs fn on each case placed in the shared file, writes the outputs
    there, answers ("ok", reused), ("unsupported", why, reused) or ("raised", traceback,
    reused); reused: the weights were left in place (fresh false), and the views of them the
    last call got serve this one (the same arrays; their key, when known, kept)."""
    import mmap
    from . import KernelCall, Unsupported, _OUTPUTS, _Widened, _write_result
    import numpy as np

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    mm = buf = None
    held = (None, None, {})  # the weights' key, layout and read-only views of the last call
    wide, gen = _Widened(), 0  # their float32 form, and the generation of the file's weights
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "map":
            held = (None, None, {})
            with open(msg[1], "r+b") as f:  # the old map goes with the last view of it
                mm = mmap.mmap(f.fileno(), msg[2])
            buf = np.frombuffer(mm, np.uint8)
            continue
        _, params, text, layout, pkey, key, fresh = msg
        wlay = [e for e in layout if e[5]]
        reused = not fresh and wlay == held[1]
        if reused and key is None:
            key = held[0]
        arrays = dict(held[2]) if reused else {}
        for name, off, shape, typestr, _, _ in layout:
            if name in arrays:
                continue
            dt = np.dtype(typestr)
            a = buf[off:off + dt.itemsize * int(np.prod(shape))].view(dt).reshape(shape)
            if name not in _OUTPUTS:
                a.flags.writeable = False  # inputs, as the C ABI's const pointers
            arrays[name] = a
        gen += not reused
        k = KernelCall(params, text, arrays, layout, pkey, key, (wide, gen))
        try:
            _write_result(k, fn(k), routing)
            reply = ("ok", reused)
        except Unsupported as e:
            reply = ("unsupported", str(e) or "unsupported", reused)
        except BaseException:
            reply = ("raised", traceback.format_exc(limit=6), reused)
        held = (k._key, wlay, {n: arrays[n] for n, *_ in wlay})  # the key, if known by now
        del k, arrays
        conn.send(reply)


class _Worker:
    """A worker process running the kernel, restarted after a crash or a hang. The tensors go
    through a file shared with it (in /dev/shm where there is one), copied in by address: no
    pickling. The per-expert tensors (w13, w2) are copied only when their weights key (the
    exec protocol's, computed in C) differs from that of the weights the file holds; the
    worker then also keeps its views of them (the same arrays, k.weights_key unchanged). A key
    is computed only where it decides something: weights of other shapes than those held, or
    that differ from them in a sampled word, are copied without one (the worker computes it
    if the kernel asks for k.weights_key).
    Counted: weights_sent (copied in) and weights_cached (left in place)."""

    def __init__(self, fn, routing, timeout, start_method):
        import tempfile
        self.fn, self.routing, self.timeout = fn, routing, timeout
        self.ctx = multiprocessing.get_context(start_method)
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="moefuzz-", dir="/dev/shm" if os.path.isdir(
            "/dev/shm") else None)
        self.mm, self.base, self.size, self.gen = None, None, 0, 0
        self.held = None  # [key or None: not computed yet, layout] of the weights in the file
        self.last_layout = None  # of the last call answered (its inputs are in the file)
        self.weights_sent = self.weights_cached = self.worker_reused = 0

    def _start(self):
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.fn, self.routing),
                                     daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        if self.mm is not None:
            self.conn.send(("map", self.path, self.size))

    def _grow(self, need):
        import mmap
        import numpy as np
        if self.mm is not None:
            os.unlink(self.path)  # unmapped with the last view of it
        self.gen += 1
        self.size = max(need, 2 * self.size, 1 << 20)
        self.path = os.path.join(self.dir, "tensors-%d" % self.gen)
        with open(self.path, "w+b") as f:
            f.truncate(self.size)
            self.mm = mmap.mmap(f.fileno(), self.size)
        self._buf = np.frombuffer(self.mm, np.uint8)
        self.base = self._buf.ctypes.data
        self.held = self.last_layout = None
        if self.proc is not None:
            self.conn.send(("map", self.path, self.size))

    def stop(self):
        if self.proc is not None:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join()
            self.conn.close()
            self.proc = None

    def close(self):
        import shutil
        self.stop()
        self._buf = self.mm = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def call(self, params, text, clayout, pkey):
        """Runs the kernel on the call whose tensors clayout gives (the extension's addresses),
        the outputs copied back there."""
        from ctypes import memmove
        from . import _OUTPUTS
        import numpy as np
        layout, nbytes, ptrs, off = [], {}, {}, 0
        for name, addr, shape, typestr, kind, weight in clayout:
            n = np.dtype(typestr).itemsize
            for d in shape:
                n *= d
            layout.append((name, off, shape, typestr, kind, weight))
            nbytes[name], ptrs[name] = n, addr
            off += (n + 63) // 64 * 64
        self.last_layout = None
        if off > self.size:
            self._grow(off)
        if self.proc is None:
            self._start()
        wlay = [e for e in layout if e[5]]
        key, cached = None, False
        # the weights the file holds are kept only when they equal this call's byte for byte
        # (64 sampled words first, which settle most changes cheaply; then all of them)
        if wlay and self.held is not None and self.held[1] == wlay and not any(
                _core.differ(self.base + e[1], ptrs[e[0]], nbytes[e[0]], True) for e in wlay) \
                and not any(_core.differ(self.base + e[1], ptrs[e[0]], nbytes[e[0]], False)
                            for e in wlay):
            key, cached = self.held[0], True
        if wlay:
            if cached:
                self.weights_cached += 1
            else:
                self.weights_sent += 1
        for name, o, _, _, _, weight in layout:
            if name in _OUTPUTS or (cached and weight):
                continue
            memmove(self.base + o, ptrs[name], nbytes[name])
        self.held = [key, wlay]
        self.conn.send(("run", params, text, layout, pkey, key, not cached))
        if not self.conn.poll(self.timeout):
            self.stop()
            raise KernelFault("timeout", "no answer in %g s (the worker was killed)"
                              % self.timeout)
        try:
            reply = self.conn.recv()
        except (EOFError, ConnectionError):
            self.proc.join()
            code = self.proc.exitcode
            self.conn.close()
            self.proc = None
            if code is not None and code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = "signal %d" % -code
                raise KernelFault("crash", "the worker died of %s" % name) from None
            raise KernelFault("crash", "the worker exited with status %s" % code) from None
        self.last_layout = layout
        self.worker_reused += bool(reply[-1])
        if reply[0] == "ok":
            for name, o, *_ in layout:
                if name in _OUTPUTS:
                    memmove(ptrs[name], self.base + o, nbytes[name])
        return reply[:-1]


def _default_seed_dirs():
    for root in (os.getcwd(), os.environ.get("MOEFUZZ_SOURCE_DIR", "")):
        d = os.path.join(root, "corpus") if root else ""
        if d and os.path.isdir(os.path.join(d, "seeds")):
            return [os.path.join(d, "seeds"), os.path.join(d, "regress")]
    return []


def _quote(s):
    import shlex
    return shlex.quote(s)


def fuzz(fn, time=60.0, runs=None, model=None, full=False, method=None, contract="any-order",
         corpus=None, workdir="fuzz-out-py", seed=1, in_process=False, timeout=10.0,
         routing=False, supports=None, backend=None, start_method="fork", meta_every=8,
         out=sys.stdout):
    """Fuzzes the kernel callable fn (as moefuzz.check calls it: a KernelCall in, the output
    out) with `moefuzz fuzz`'s structured generator and mutator, and returns a FuzzResult.

    The loop runs in the extension: an input is a corpus entry not run yet, a random case, a
    crossover of two entries or a mutated entry (src/casegen.c), run and checked by src/fuzz.c
    as fuzz_moe runs one (the output poisoned and guarded, two runs compared where the contract
    is deterministic, the metamorphic relations on one input in meta_every, observability on one
    in 8). Feedback: an input is kept when it sets one of src/fuzz.c's numerical counters no
    input set before (configuration cell x routing ambiguity, coarse configuration x
    utilisation bucket, observable knobs); no code coverage is measured.

    corpus: a file or directory of cases to start from (default: corpus/seeds and
    corpus/regress under the current directory or MOEFUZZ_SOURCE_DIR; none found: random cases
    only). workdir gets corpus/ (the inputs kept), artifacts/ (the failing inputs, named crash-
    or timeout-SHA1 as libFuzzer names them: the fuzz input's bytes, which `moefuzz repro`
    replays, with the case as text beside it as NAME.txt) and campaign.txt (model, method,
    contract; backend as given by backend=, the `moefuzz check --backend` spelling of the same
    kernel, e.g. an exec adapter, else empty). Stops after `time` seconds or `runs` inputs.

    fn runs in a worker process (start_method "fork" or "spawn": spawn needs fn importable):
    the case's tensors go to it, the outputs come back; a crash, an exception or no answer
    within `timeout` seconds is a finding, saved with its case, and a new worker goes on.
    in_process=True calls fn in this process (faster; a crash ends the campaign). fn refuses a
    case by raising moefuzz.Unsupported (counted, not a failure), or supports= (as check)."""
    from . import KernelCall, Unsupported, _write_result

    if runs is None and time is None:
        raise ValueError("moefuzz.fuzz: give time= or runs=")
    worker = None if in_process else _Worker(fn, routing, timeout, start_method)
    refused = [0]

    def call(params, text, layout, pkey):
        if in_process:
            k = KernelCall._at(params, text, layout, pkey, layout)
            try:
                res = fn(k)
            except Unsupported as e:
                return str(e) or "unsupported"
            except Exception:
                raise KernelFault("raised", traceback.format_exc(limit=6))
            _write_result(k, res, routing)
            return None
        reply = worker.call(params, text, layout, pkey)
        if reply[0] == "unsupported":
            return reply[1]
        if reply[0] == "raised":
            raise KernelFault("raised", reply[1])
        return None

    sup = None
    if supports is not None:
        def sup(text):
            r = supports(text)
            return None if r is None or r is True else str(r or "unsupported")

    fz = _core.fuzzer((call, sup), seed, model=model, full=full, method=method,
                      contract=contract, routing=routing, meta_every=meta_every)
    sources = [os.fspath(corpus)] if corpus is not None else _default_seed_dirs()
    n_seeds = 0
    for src in sources:
        if os.path.exists(src):
            for p in _core.paths(src):
                fz.add(p)
                n_seeds += 1
    for sub in ("corpus", "artifacts"):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    with open(os.path.join(workdir, "campaign.txt"), "w") as f:
        f.write("# moefuzz fuzz campaign: `moefuzz repro` and `moefuzz minimize` of inputs under "
                "this\n# directory use these settings unless told otherwise (empty: none)\n"
                "# %s\nbackend = %s\nmodel = %s\nfull = %d\nmethod = %s\ncontract = %s\n"
                % (ARTIFACT_NOTE, backend or "", model or "", int(bool(full)), method or "",
                   contract))
    print("moefuzz.fuzz: %s, %s, %s; seeds: %d inputs from %s; work dir %s"
          % (getattr(fn, "__name__", "kernel"), "in process" if in_process else
             "worker process (%s)" % start_method,
             "stops after %d inputs" % runs if runs is not None else
             "stops after %g s" % time, n_seeds, ", ".join(sources) or "none", workdir),
          file=out)
    failures, t0, n = [], _time.monotonic(), 0
    try:
        while (runs is None or n < runs) and (time is None or _time.monotonic() - t0 < time):
            n += 1
            r = fz.step()
            exc = r["exception"]
            if exc is not None and not isinstance(exc, KernelFault):
                raise exc
            if r["unusable"]:
                raise _core.MoefuzzError(r["report"])
            if r["outcome"] == "skip" and r["unsupported"]:
                refused[0] += 1
                continue
            if r["kept"]:
                name = hashlib.sha1(r["input"]).hexdigest()
                with open(os.path.join(workdir, "corpus", name), "wb") as f:
                    f.write(r["input"])
            if r["outcome"] in ("fail", "error"):
                failures.append(_save_failure(r, exc, workdir, model, full, method, contract,
                                              backend, out))
    finally:
        if worker is not None:
            worker.close()
    seconds = _time.monotonic() - t0
    counts, lines = fz.stats()
    counts["refused"] = refused[0]
    if worker is not None:
        counts["weights_sent"] = worker.weights_sent
        counts["weights_cached"] = worker.weights_cached
        counts["weights_reused"] = worker.worker_reused
    text = _summary(counts, lines, failures, seconds, model, fz.corpus_size(), in_process)
    print(text, file=out, end="")
    return FuzzResult(failures, counts, seconds, text, workdir)


def _save_failure(r, exc, workdir, model, full, method, contract, backend, out):
    kind = "timeout" if isinstance(exc, KernelFault) and exc.kind == "timeout" else "crash"
    name = "%s-%s" % (kind, hashlib.sha1(r["input"]).hexdigest())
    path = os.path.join(workdir, "artifacts", name)
    with open(path, "wb") as f:
        f.write(r["input"])
    report = r["report"]
    sig = r["signature"]
    if isinstance(exc, KernelFault):
        sig = "kernel %s: %s" % (exc.kind, exc.detail.strip().splitlines()[-1])
        report += "the kernel callable: %s\n" % exc
    case_text = report.split("replays it)\n", 1)[-1].split("---- diagnosis", 1)[0]
    with open(path + ".txt", "w") as f:
        f.write(case_text)
    cmd = "moefuzz repro"
    for opt, v in (("--backend", backend or "BACKEND"), ("--model", model),
                   ("--method", method), ("--contract", contract)):
        if v:
            cmd += " %s %s" % (opt, _quote(v))
    if full:
        cmd += " --full"
    cmd += " " + _quote(path)
    print(report.rstrip("\n") + "\nsaved: %s (the case as text: %s.txt)\nreplay: %s\n"
          % (path, path, cmd), file=out)
    return Failure(kind, sig, path, report, cmd)


def _summary(counts, lines, failures, seconds, model, corpus_size, in_process):
    s = "\n==== moefuzz.fuzz summary (Python callable%s, %s, %.0f s) ====\n" % (
        ", model " + model if model else "", "in process" if in_process else "worker process",
        seconds)
    s += ("execs            %d (%.1f/s), of which %d passed, %d skipped (over budget, or "
          "unsupported: %d refused by the kernel)\n"
          % (counts["execs"], counts["execs"] / seconds if seconds > 0 else 0.0,
             counts["passes"], counts["skips"], counts["refused"]))
    s += "contract         %s\n" % (counts["contract"] or "- (no input ran)")
    if not in_process:
        s += ("weights          %d kernel calls sent the worker their expert weights, %d found "
              "them there (same weights key)\n" % (counts["weights_sent"],
                                                   counts["weights_cached"]))
    s += "corpus           %d inputs (seeds and inputs that reached new counters)\n" % corpus_size
    s += lines
    if not failures:
        return s + "failures         none\n"
    groups = {}
    for f in failures:
        groups.setdefault(f.signature, []).append(f)
    s += "failures         %d input%s, %d signature%s:\n" % (
        len(failures), "" if len(failures) == 1 else "s", len(groups),
        "" if len(groups) == 1 else "s")
    for sig, fs in groups.items():
        s += "  [%d] %s\n      e.g. %s\n      replay: %s\n" % (len(fs), sig, fs[0].path,
                                                             fs[0].replay)
    return s
