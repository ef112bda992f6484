"""``rectiflow`` with the sweep job's thread held at the end of every pass for
$SLOW_PASS_SECONDS (1.5 s): past the next tick, which finds the last run still going."""

import os
import sys
import time

from rectiflow import scheduler
from rectiflow.cli import main

DELAY = float(os.environ.get("SLOW_PASS_SECONDS", "1.5"))
_pass = scheduler.Scheduler._pass


def _held_pass(self: scheduler.Scheduler) -> None:
    _pass(self)
    time.sleep(DELAY)


scheduler.Scheduler._pass = _held_pass  # type: ignore[method-assign]
main(sys.argv[1:])
