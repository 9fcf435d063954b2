"""`python interrupted_run.py TRAIN_COMMAND...`: runs TRAIN_COMMAND --out model.pt in this folder, presses Ctrl-C in
its terminal as soon as its first epoch is saved (model.pt.resume), then runs TRAIN_COMMAND --out model.pt --resume,
whose log is this script's stderr and whose exit code is this script's. Exit 3 when the first run could not be
interrupted in its second epoch. The suite starts it with the session (conftest.background_runs), so that the
two torchrun runs of tests/test_distributed.py take the core the other tests leave idle; it imports no torch.

SIGTERM or SIGINT (the suite ending early, Ctrl-C in its terminal) stops whichever run is going, every process of
it: each run leads its own process group, so the terminal's Ctrl-C reaches only this script."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

current: subprocess.Popen | None = None


def stop(signum, frame):
    if current is not None and current.poll() is None:
        os.killpg(current.pid, signal.SIGTERM)  # each run is the leader of its own process group
        current.wait()
    sys.exit(128 + signum)


def main(command: list[str]) -> int:
    global current
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Each run leads a process group of its own, in the suite's session: a new session would be a new scheduling
    # group (autogroup) that takes a core from the tests whatever its nice.
    current = subprocess.Popen([*command, "--out", "model.pt"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=os.setpgrp)
    deadline = time.monotonic() + 600
    while not os.path.exists("model.pt.resume") and current.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        os.killpg(current.pid, signal.SIGINT)  # Ctrl-C in its terminal: every process of the run gets it
    except ProcessLookupError:  # it had ended already: said below
        pass
    current.wait(timeout=120)
    if not os.path.isfile("model.pt.resume") or os.path.exists("model.pt"):
        print("the run ended before it could be interrupted in its second epoch", file=sys.stderr)
        return 3
    current = subprocess.Popen([*command, "--out", "model.pt", "--resume"], preexec_fn=os.setpgrp)
    return current.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
