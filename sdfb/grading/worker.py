"""What runs inside a grading worker process: both checks on one pair, the gold answer check, and the worker's
own limits (address space, length of the checkers' log lines). The parent enforces the time limit."""

from __future__ import annotations

import logging
import resource
import traceback

from sdfb.grading.verdict import gold_verdict, verdict
from sdfb.names import GoldStatus, GradeStatus

LOG_CAP = 500  # characters per log line from math-verify / latex2sympy (they log the whole input on failure)
_CHECKER_LOGGERS = (
    "math_verify",
    "math_verify.parser",
    "math_verify.grader",
    "math_verify.utils",
    "math_verify.metric",
    "latex2sympy2_extended",
    "latex2sympy2_extended.math_normalization",
)


class _CapLength(logging.Filter):
    """Cuts a record's message and traceback to `max_chars`; drops the warning that the checker's own
    timeout is off (it is off on purpose: the parent process enforces the limit)."""

    def __init__(self, max_chars: int):
        super().__init__()
        self.max_chars = max_chars

    def _cut(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        return f"{text[: self.max_chars]}... [{len(text) - self.max_chars} more characters]"

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Timeout is disabled"):
            return False
        record.msg = self._cut(message)
        record.args = ()
        if record.exc_info:
            record.exc_text = self._cut("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


def cap_checker_logs(max_chars: int = LOG_CAP) -> None:
    """Install the length cap on the checkers' loggers (filters sit on the logger that emits, so on each)."""
    for name in _CHECKER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _CapLength) for f in logger.filters):
            logger.addFilter(_CapLength(max_chars))


def start_worker(ready, memory_mb: int) -> None:
    """Pool initializer: import the checkers, cap their logs, wait for the other workers, then cap memory.

    The address-space limit is what the worker holds once imported plus `memory_mb`: a
    spawned worker re-imports the parent's main module, so its own footprint depends on the
    program that started it, not on the checks.
    """
    import math_verify  # noqa: F401  (import cost must not count against the first comparison's time limit)

    cap_checker_logs()
    ready.wait()
    limit = _address_space() + memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(
        resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard)
    )


def _address_space() -> int:
    """Bytes of address space this process holds now (Linux /proc); 0 where that cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def compare(predicted: str, gold: str) -> tuple[GradeStatus, bool]:
    """(status, checks_disagree) for one pair, in a worker process (`sdfb.grading.verdict.verdict`).

    A MemoryError that reaches this function (the worker's address-space limit) is `timeout`:
    the check ran out of its budget. math-verify swallows most errors inside its comparison, so
    a limit hit there usually ends as `wrong`.
    """
    try:
        return verdict(predicted, gold)
    except MemoryError:
        return GradeStatus.TIMEOUT, False


def gold_status(gold: str) -> GoldStatus:
    """ok when the gold answer parses as grading parses it, else unparseable; in a worker process."""
    try:
        return gold_verdict(gold)
    except MemoryError:
        return GoldStatus.TIMEOUT
