"""The python.package ctest's rules: a skip is a failure, except a torch-only test where torch is
absent (its reason says so)."""
pytest_plugins = ["pytester"]

_bad_skips = []


def pytest_runtest_logreport(report):
    if report.skipped and not getattr(report, "wasxfail", None):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        if "torch is not installed" not in reason:
            _bad_skips.append("%s: %s" % (report.nodeid, reason))


def pytest_sessionfinish(session, exitstatus):
    if _bad_skips and session.exitstatus == 0:
        print("\nFAIL: tests skipped (only torch-only tests may skip):\n  " +
              "\n  ".join(_bad_skips))
        session.exitstatus = 1
