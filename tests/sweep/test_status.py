"""``microtune sweep status`` beyond its table: the live state of a trial and the summary line
(end to end in test_sweep_e2e.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from microtune.sweep.commands import status_summary
from microtune.sweep.runner import _live_state


def test_status_names_a_running_trial_and_counts_those_not_started():
    """Ray's saved experiment state files a running trial as PENDING (ray/tune/experiment/trial.py,
    Trial.__setstate__); status asks whether the process of its last result is alive here."""
    here = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert _live_state("PENDING", {"pid": os.getpid(), "hostname": here}) == "RUNNING"
    assert _live_state("PENDING", {"pid": dead.pid, "hostname": here}) == "PENDING"      # interrupted
    assert _live_state("PENDING", {"pid": os.getpid(), "hostname": here + "-other"}) == "PENDING"
    assert _live_state("PENDING", {}) == "PENDING"                                        # never reported
    assert _live_state("TERMINATED", {"pid": os.getpid(), "hostname": here}) == "TERMINATED"
    rows = [{"state": "RUNNING"}, {"state": "RUNNING"}, {"state": "TERMINATED"}]
    assert status_summary(rows, 12) == "3 of 12 trial(s) started: 2 RUNNING, 1 TERMINATED; 9 not started"
    assert status_summary(rows, 3) == "3 of 3 trial(s) started: 2 RUNNING, 1 TERMINATED"
    assert status_summary([], None) == "0 trial(s) started: none"
