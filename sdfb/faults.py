"""Named points where the fault tests kill a real run: with
`SDFB_KILL_AT=<point>[:<n>]` in the environment, the process sends itself SIGKILL the
n-th time (default: first) it reaches that point. Without it, a no-op.

Points: `start:<stage>`, `done:<stage>` (stage boundaries), `unvouched:<file>` (a table written, its
manifest not yet), `generate:batch`, `grade:answers` (answers extracted, not compared), `grade:result` (a
grading-pool job done), `critique:replies`, `distill:step` (inside the work).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "SDFB_KILL_AT"
_hits: Counter[str] = Counter()


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.rpartition(":") if spec.rsplit(":", 1)[-1].isdigit() else (spec, "", "1")
    if name != target:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth):
        os.kill(os.getpid(), signal.SIGKILL)
