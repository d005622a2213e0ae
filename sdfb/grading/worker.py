"""What runs inside a grading worker process: both checks on one pair, the gold answer check, and the worker's
own limits (address space, length of the checkers' log lines). The parent enforces the time limit."""

from __future__ import annotations

import logging
import resource
import traceback

from sdfb.grading.check import independent_check
from sdfb.grading.normalise import checker_form

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
    """Cuts a record's message and traceback to `max_chars`; drops the warning that the checker's own timeout is
    off (it is off on purpose: the parent process enforces the limit)."""

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
        record.msg, record.args = self._cut(message), ()
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

    The address-space limit is what the worker holds once imported plus `memory_mb`: a spawned worker re-imports
    the parent's main module, so its own footprint depends on the program that started it, not on the checks.
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


def _parsed(form: str) -> list:
    """math-verify's parse of a checker form, wrapped in `$...$`; [] unless it yields a sympy object.

    Only the LaTeX extractor is used: the plain-expression one hands digits-and-operators text to sympy's
    parse_expr (an eval), and it reads `x + y = 3` as 3."""
    from math_verify import LatexExtractionConfig, parse
    from sympy import Basic, MatrixBase

    found = parse(f"${form}$", extraction_config=[LatexExtractionConfig()], parsing_timeout=None)
    return found if any(isinstance(item, Basic | MatrixBase) for item in found) else []


def compare(predicted: str, gold: str) -> tuple[str, bool]:
    """(status, checks_disagree) for one pair, in a worker process.

    math-verify decides first; the second check (`independent_check`) can only take `correct` away: where it
    judges and disagrees, the status is `wrong` and the disagreement is recorded, whichever of the two said
    `correct`. A MemoryError that reaches this function (the worker's address-space limit) is `timeout`: the
    check ran out of its budget. math-verify swallows most errors inside its comparison, so a limit hit there
    usually ends as `wrong`.
    """
    from math_verify import verify

    try:
        gold_form, pred_form = checker_form(gold), checker_form(predicted)
        if gold_form is None or pred_form is None:
            return "unparseable", False
        gold_parsed, pred_parsed = _parsed(gold_form), _parsed(pred_form)
        if not gold_parsed or not pred_parsed:
            return "unparseable", False
        first = verify(gold_parsed, pred_parsed, timeout_seconds=None)
        second = independent_check(gold_form, pred_form)
    except MemoryError:
        return "timeout", False
    if second is None or second == first:
        return ("correct" if first else "wrong"), False
    return "wrong", True


def gold_status(gold: str) -> str:
    """'ok' when the gold answer parses as grading parses it, else 'unparseable'; in a worker process."""
    try:
        form = checker_form(gold)
        return "ok" if form is not None and _parsed(form) else "unparseable"
    except MemoryError:
        return "timeout"
