"""harness.py — the PASS/FAIL/SKIP printer of every Python checker under tests/.

One line per case, in the form tests/run_all.sh counts:
    PASS name[: detail]      FAIL name: why      SKIP name: why
A SKIP fails in strict mode unless its reason starts with "no GPU".

Checkers `import harness`: tests/harness.sh (which every suite sources) puts
tests/ on PYTHONPATH; to run a checker by hand, set PYTHONPATH=tests.

`tests/run_all.sh SUITE CASE` sets RXC_TEST_CASE to CASE; a checker whose
cases are cheap to tell apart asks selected(name) and runs only that one
(the other lines would be hidden by run_all.sh anyway).
"""
import os


def _line(verdict, name, text):
    print(f"{verdict} {name}" + (f": {text}" if text else ""), flush=True)


def passed(name, detail=None):
    _line("PASS", name, detail)


def failed(name, why):
    _line("FAIL", name, why)


def skipped(name, why):
    _line("SKIP", name, why)


def check(name, ok, why="", detail=None):
    """PASS name[: detail] when ok, else FAIL name: why. Returns ok."""
    if ok:
        passed(name, detail)
    else:
        failed(name, why)
    return ok


def measured(name, ok, text):
    """PASS name: text or FAIL name: text (the same measurement either way). Returns ok."""
    return check(name, ok, text, text)


def selected(name):
    """Whether `tests/run_all.sh SUITE CASE` asked for this case (True when it asked for none)."""
    want = os.environ.get("RXC_TEST_CASE")
    return not want or want == name
