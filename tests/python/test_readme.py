"""README.md's "From Python" works as written: its ```python blocks run, in order, in one
namespace, from a directory holding the clone's corpus/ and examples/; its `.venv/bin/python -m
pytest` command runs with this interpreter and the package under test (tests/readme_commands.sh
skips it: it needs the venv that `pip install .` makes, marked long there)."""
import os
import re
import shlex
import subprocess
import sys

SRC = os.environ["MOEFUZZ_SOURCE_DIR"]


def section():
    text = open(os.path.join(SRC, "README.md")).read()
    start = text.index("\n## From Python\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def test_python_blocks_run(tmp_path, monkeypatch, capsys):
    for d in ("corpus", "examples"):
        os.symlink(os.path.join(SRC, d), tmp_path / d)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    blocks = re.findall(r"```python\n(.*?)```", section(), re.S)
    assert len(blocks) == 3
    ns = {}
    for b in blocks:
        exec(compile(b, "README.md", "exec"), ns)
    assert ns["v"].passed
    out = capsys.readouterr().out
    assert "PASS corpus/seeds/mixtral-tiny.txt (contract any-order)" in out
    # the fuzz block: the planted bug is found, and its signature is the one the README shows
    sig = "stage output; suspected rsf_dropped (routed_scaling_factor not applied)"
    assert ns["r"].failures[0].signature == sig and "\n" + sig + "\n" in out
    assert os.path.exists(ns["r"].failures[0].path)


def test_venv_commands_run(tmp_path):
    lines = [l for b in re.findall(r"```sh\n(.*?)```", section(), re.S) for l in b.splitlines()
             if l.startswith(".venv/bin/python -m pytest ")]
    assert len(lines) == 1
    for d in ("corpus", "examples"):
        os.symlink(os.path.join(SRC, d), tmp_path / d)
    for line in lines:
        args = shlex.split(line.split("  #")[0])[1:]
        assert args[:2] == ["-m", "pytest"]
        # the entry point of an installed package registers the plugin; here -p does
        cmd = [sys.executable, "-m", "pytest", "-p", "moefuzz.pytest_plugin",
               "-p", "no:cacheprovider"] + args[2:]
        r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        assert re.search(r"\b7 passed\b", r.stdout), r.stdout
