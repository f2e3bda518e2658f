"""TAP-style checks shared by the Python integration tests.

check() prints one "ok"/"not ok" line per assertion and remembers the failures, so a test
reports every broken expectation of a run instead of stopping at the first; skip() exits
with meson's "skipped" status (77) and the reason.
"""
import os
import sys

failures = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures.append(what)


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(77)


def forget_aws_environment():
    """The clients under test must use the credentials the test hands them, nothing else."""
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]
