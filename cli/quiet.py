"""Terminal output for errors the user can fix: Prefect's console shows their one-line message, not a
traceback from inside the libraries. The flow run's logs in the Prefect UI keep the full traceback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _WithoutTraceback(logging.Formatter):
    """Formats like `inner`, leaving out the traceback of the exception kinds given."""

    def __init__(self, inner: logging.Formatter, kinds: tuple[type[BaseException], ...]):
        super().__init__()
        self.inner = inner
        self.kinds = kinds

    def format(self, record: logging.LogRecord) -> str:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, self.kinds):
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info = None
        record.exc_text = None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


@contextlib.contextmanager
def short_errors(kinds: tuple[type[BaseException], ...]) -> Iterator[None]:
    """While active, the console handlers of the root logger (where
    Prefect prints) drop tracebacks of `kinds`."""
    import prefect.main  # noqa: F401  (sets up Prefect's logging, so its console handler exists)

    wrapped = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.formatter is not None:
            wrapped.append((handler, handler.formatter))
            handler.setFormatter(_WithoutTraceback(handler.formatter, kinds))
    try:
        yield
    finally:
        for handler, formatter in wrapped:
            handler.setFormatter(formatter)
