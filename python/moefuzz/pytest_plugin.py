"""moefuzz's pytest plugin (entry point pytest11 "moefuzz"): the `moe_case` fixture.

A test that takes `moe_case` runs once per case: the files of corpus/seeds and corpus/regress
(those shipped with the package, or under MOEFUZZ_SOURCE_DIR, or --moefuzz-corpus), and N random
cases of each model named by --moefuzz-models (--moefuzz-random N, --moefuzz-seed S):

    def test_my_kernel(moe_case):
        moefuzz.assert_moe_close(my_kernel(moe_case), moe_case)

A failing test's report gets a "moefuzz" section: the case saved as text under --moefuzz-save
(default moefuzz-failures/) and the commands that replay it. --moefuzz-case FILE runs the
tests on that one case.
"""
import os
import re

import pytest

import moefuzz


def pytest_addoption(parser):
    g = parser.getgroup("moefuzz", "moefuzz: exact-reference MoE cases (the moe_case fixture)")
    g.addoption("--moefuzz-corpus", action="append", default=None, metavar="PATH",
                help="case files or directories for moe_case (repeatable; default: corpus/seeds "
                     "and corpus/regress)")
    g.addoption("--moefuzz-models", default="", metavar="M1,M2",
                help="model presets to draw random cases of (moefuzz.models())")
    g.addoption("--moefuzz-random", type=int, default=0, metavar="N",
                help="random cases per model of --moefuzz-models (default 0; 4 with models)")
    g.addoption("--moefuzz-seed", type=int, default=1, metavar="S",
                help="seed of the random cases (case i of a model uses S + i)")
    g.addoption("--moefuzz-case", default=None, metavar="FILE",
                help="run moe_case tests on this one case file only (a replay)")
    g.addoption("--moefuzz-save", default="moefuzz-failures", metavar="DIR",
                help="where the cases of failing tests are saved (default moefuzz-failures)")


def pytest_configure(config):
    """Bad options are usage errors before collection (exit 4)."""
    known = set(moefuzz.models())
    for m in _models(config):
        if m not in known:
            raise pytest.UsageError("moefuzz: unknown model '%s' (moefuzz.models())" % m)


def _models(config):
    return [m for m in config.getoption("moefuzz_models").split(",") if m]


def default_corpus():
    """corpus/seeds and corpus/regress: shipped in the package, else under MOEFUZZ_SOURCE_DIR."""
    roots = [os.path.join(os.path.dirname(moefuzz.__file__), "corpus")]
    if os.environ.get("MOEFUZZ_SOURCE_DIR"):
        roots.insert(0, os.path.join(os.environ["MOEFUZZ_SOURCE_DIR"], "corpus"))
    for r in roots:
        dirs = [os.path.join(r, d) for d in ("seeds", "regress")]
        if all(os.path.isdir(d) for d in dirs):
            return dirs
    return None


class _CaseRef:
    """What moe_case loads, given without loading it (collection stays cheap)."""

    def __init__(self, path=None, model=None, seed=None, id=None):
        self.path, self.model, self.seed, self.id = path, model, seed, id

    def load(self):
        if self.path:
            return moefuzz.Case.load(self.path)
        return moefuzz.Case.random(self.seed, model=self.model)


def _case_refs(config):
    one = config.getoption("moefuzz_case")
    if one:
        return [_CaseRef(path=one, id=os.path.basename(one))]
    refs = []
    corpus = config.getoption("moefuzz_corpus")
    if corpus is None:
        corpus = default_corpus()
        if corpus is None:
            raise pytest.UsageError("moefuzz: no corpus found (the package has none and "
                                    "MOEFUZZ_SOURCE_DIR is not set): pass --moefuzz-corpus")
    for c in corpus:
        try:
            paths = moefuzz._core.paths(c)
        except moefuzz.MoefuzzError as e:
            raise pytest.UsageError("moefuzz: --moefuzz-corpus %s: %s" % (c, e))
        base = os.path.dirname(os.path.abspath(c)) if os.path.isdir(c) else None
        for p in paths:
            rel = os.path.relpath(p, base) if base else os.path.basename(p)
            refs.append(_CaseRef(path=p, id=re.sub(r"\.txt$", "", rel)))
    models = _models(config)
    n = config.getoption("moefuzz_random") or (4 if models else 0)
    seed = config.getoption("moefuzz_seed")
    for m in models:
        for i in range(n):
            refs.append(_CaseRef(model=m, seed=seed + i, id="%s#seed=%d" % (m, seed + i)))
    return refs


def pytest_generate_tests(metafunc):
    if "moe_case" in metafunc.fixturenames:
        refs = _case_refs(metafunc.config)
        metafunc.parametrize("moe_case", refs, ids=[r.id for r in refs], indirect=True)


@pytest.fixture
def moe_case(request):
    """A moefuzz.Case: one per corpus file and random case (see the plugin's options)."""
    case = request.param.load()
    request.node._moefuzz_case = case
    return case


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    case = getattr(item, "_moefuzz_case", None)
    if case is None or rep.when != "call" or not rep.failed:
        return
    save = item.config.getoption("moefuzz_save")
    os.makedirs(save, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", item.name) + ".txt"
    path = case.save(os.path.join(save, name))
    # the test's id from where pytest was run (the node id is relative to rootdir, which pytest
    # may have chosen above the working directory)
    node = item.nodeid.split("[")[0]
    rest = node.split("::", 1)[1] if "::" in node else ""
    here = str(item.config.invocation_params.dir)
    test_id = os.path.relpath(str(getattr(item, "path", item.fspath)), here) + ("::" + rest if rest else "")
    rep.sections.append(("moefuzz", "case %s saved: %s\nreplay: pytest '%s' --moefuzz-case %s\n"
                         "        moefuzz explain %s   (the reference's routing and outputs)\n"
                         % (case.label, path, test_id, path, path)))
