"""Fork safety for kafkahooks' locks.

A child forked while another thread of the parent held one of kafkahooks' locks (the export
worker aggregating checkpoints, a client thread counting a drop) inherits that lock held, by a
thread that does not exist in the child: the child's first ``with`` on it would wait forever.
:class:`Lock` is a ``threading.Lock`` that a forked child replaces, unheld, before its first use.
The check is one comparison of integers per acquisition.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

_generation = 0
"""Forks survived by this process (bumped in every child, right after fork)."""


def _forked() -> None:
    global _generation  # noqa: PLW0603 - one counter for the whole process, by design
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def generation() -> int:
    """How many forks led to this process (0 in the original one)."""
    return _generation


class Lock:
    """``with lock:`` -- a ``threading.Lock`` made anew in a forked child before its first use."""

    __slots__ = ("_generation", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = _generation

    def _current(self) -> threading.Lock:
        if self._generation != _generation:
            self._lock = threading.Lock()
            self._generation = _generation
        return self._lock

    def __enter__(self) -> bool:
        return self._current().acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._current().acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._current().locked()
