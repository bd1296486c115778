"""The package logger: never configures the root logger, times long steps."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

logger = logging.getLogger("cd7escape")
logger.addHandler(logging.NullHandler())


def _fmt(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


@contextmanager
def timed(what: str) -> Iterator[None]:
    """Log ``what`` on entry and ``finished (0:00:02)`` on exit."""
    logger.info("%s", what)
    start = time.perf_counter()
    yield
    logger.info("    finished %s (%s)", what, _fmt(time.perf_counter() - start))
