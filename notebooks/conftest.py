"""pytest configuration for executing the notebooks with nbval.

* ``notebooks/student/`` is not executed: its exercise stubs raise by design.
* Each notebook's wall time (kernel start + all cells) is reported at the end,
  and the run fails if one exceeds the budget (90 s in the ci profile;
  ``COURSE_NOTEBOOK_BUDGET_S`` overrides it).
"""
import os
from collections import defaultdict

collect_ignore = ["student"]
_times: dict = defaultdict(float)


def _budget() -> float:
    return float(os.environ.get("COURSE_NOTEBOOK_BUDGET_S", "90"))


def pytest_runtest_logreport(report):
    if str(report.fspath).endswith(".ipynb"):
        _times[os.path.basename(str(report.fspath))] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _times:
        return
    budget = _budget()
    terminalreporter.section(f"notebook times (budget {budget:.0f} s each)")
    for name, secs in sorted(_times.items()):
        flag = "  OVER BUDGET" if secs > budget else ""
        terminalreporter.write_line(f"{name:45s} {secs:7.1f} s{flag}")
    terminalreporter.write_line(f"{'total':45s} {sum(_times.values()):7.1f} s")


def pytest_sessionfinish(session, exitstatus):
    over = {k: v for k, v in _times.items() if v > _budget()}
    if over and exitstatus == 0:
        session.exitstatus = 1
