"""Stage lines for long commands: what is running now, on standard error.

The long commands (``estimate``, ``refute``, ``compare``, ``scenario``, ``demo``) say
what they are doing as they go, one line per stage, on standard error::

    vagg-bayes: [   1 s] fitting the outcome equation exp_res 1/2 (400 rows) ...
    vagg-bayes: [  10 s] fitting the mediator equation cost_eff 2/2 (400 rows) ...
    vagg-bayes: [  13 s] effects ...
    vagg-bayes: [  13 s] mediation tables (sensitivity, classical tests, per group) ...
    vagg-bayes: [  14 s] writing /tmp/out/ ...

The code that knows the stage calls :func:`stage`; it prints only inside
:func:`reporting` (the command line opens it unless ``--quiet``), so the Python API,
refits and tests stay silent. Lines go only from the process that opened the
reporter (forked sampler or refit workers inherit it but say nothing), and
:func:`silenced` hides the stages of work nested inside a stage of its own (the fits
inside a refutation test). Cheap to import: the standard library only.

May import: the standard library.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import time
from collections.abc import Iterator
from typing import TextIO

PREFIX = "vagg-bayes"


class StageReporter:
    """Writes one line per stage to ``stream`` (default: standard error at call time)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.start = time.perf_counter()
        self.pid = os.getpid()

    def __call__(self, message: str) -> None:
        if os.getpid() != self.pid:  # a forked worker: the parent reports
            return
        stream = self.stream if self.stream is not None else sys.stderr
        elapsed = time.perf_counter() - self.start
        print(f"{PREFIX}: [{elapsed:4.0f} s] {message}", file=stream, flush=True)


_REPORTER: contextvars.ContextVar[StageReporter | None] = contextvars.ContextVar(
    "vagg_bayes_progress", default=None)


def stage(message: str) -> None:
    """Report that ``message`` starts now (a no-op outside :func:`reporting`)."""
    reporter = _REPORTER.get()
    if reporter is not None:
        reporter(message)


def enabled() -> bool:
    """Whether stage lines are shown here (inside :func:`reporting`, not silenced)."""
    return _REPORTER.get() is not None


@contextlib.contextmanager
def reporting(on: bool = True, stream: TextIO | None = None) -> Iterator[None]:
    """Show stage lines inside the block (``on=False``: show none, e.g. ``--quiet``)."""
    token = _REPORTER.set(StageReporter(stream) if on else None)
    try:
        yield
    finally:
        _REPORTER.reset(token)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Hide the stage lines of the work inside the block."""
    token = _REPORTER.set(None)
    try:
        yield
    finally:
        _REPORTER.reset(token)
