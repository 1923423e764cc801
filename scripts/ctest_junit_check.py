#!/usr/bin/env python3
"""ctest_junit_check.py JUNIT SELECTED_JSON [ALL_JSON]: what a ctest run ran, read back.

JUNIT is ctest's --output-junit report of the run; SELECTED_JSON is `ctest --show-only=json-v1`
with the same filters (the tests the run was meant to run); ALL_JSON, the same without filters,
names the tests the filters left out. Every selected test must have run. A test may skip (exit
77, reported as "notrun" with SKIP_RETURN_CODE) only when it is labelled gpu (no usable device)
or optional (a package scripts/setup.sh does not install); each such skip is listed with the
last line it printed, its reason. Under MOEFUZZ_REQUIRE_GPU=1 a gpu skip is a failure too.
Any other skip, a test absent from the report, a disabled test or a missing executable fails.
Exit: 0 all ran (or skipped as allowed), 1 otherwise, 2 unreadable input.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET

ALLOWED = ("gpu", "optional")


def labels_of(tests_json):
    with open(tests_json) as f:
        tests = json.load(f)["tests"]
    out = {}
    for t in tests:
        labels = []
        for p in t.get("properties", []):
            if p["name"] == "LABELS":
                labels = p["value"]
        out[t["name"]] = labels
    return out


def reason(case):
    text = case.findtext("system-out") or ""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    return (lines[-1] if lines else "(no output)")[:200]


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    try:
        cases = {c.get("name"): c for c in ET.parse(argv[1]).getroot().iter("testcase")}
        selected = labels_of(argv[2])
        every = labels_of(argv[3]) if len(argv) == 4 else selected
    except (OSError, ValueError, KeyError, ET.ParseError) as e:
        print(f"ctest_junit_check: cannot read the report: {e}", file=sys.stderr)
        return 2
    require_gpu = os.environ.get("MOEFUZZ_REQUIRE_GPU") == "1"
    ran, failed, allowed, not_run = 0, 0, [], []
    for name, labels in selected.items():
        case = cases.get(name)
        status = case.get("status") if case is not None else None
        if status == "run":
            ran += 1
            continue
        if status == "fail":
            ran += 1
            failed += 1
            continue
        if case is None:
            not_run.append(f"{name}: absent from the JUnit report (did not run)")
            continue
        skipped = case.find("skipped")
        why = skipped.get("message", "") if skipped is not None else status
        kind = next((l for l in ALLOWED if l in labels), None)
        if status == "notrun" and why.startswith("SKIP_RETURN_CODE") and kind:
            if kind == "gpu" and require_gpu:
                not_run.append(f"{name}: skipped under MOEFUZZ_REQUIRE_GPU=1: {reason(case)}")
            else:
                allowed.append(f"{name} ({kind}): {reason(case)}")
            continue
        not_run.append(f"{name} [{' '.join(labels)}]: {status} ({why}): {reason(case)}")
    left_out = sorted(set(every) - set(selected))
    print(f"ctest report: {len(selected)} selected, {ran} ran ({failed} failed), "
          f"{len(allowed)} skipped as allowed, {len(not_run)} did not run; "
          f"{len(left_out)} left out by the filters")
    for a in allowed:
        print(f"  skipped: {a}")
    for n in not_run:
        print(f"  NOT RUN: {n}")
    if left_out:
        print("  left out: " + ", ".join(left_out))
    return 1 if not_run else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
