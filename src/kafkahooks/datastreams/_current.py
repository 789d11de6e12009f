"""The pathway the application is currently on, per thread and per asyncio task (``contextvars``)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from kafkahooks.datastreams._pathway import PathwayContext

_current: contextvars.ContextVar[PathwayContext | None] = contextvars.ContextVar("kafkahooks_pathway", default=None)


def current_pathway() -> PathwayContext | None:
    """The pathway of the records this thread or task consumed last (None at an origin)."""
    return _current.get()


def set_pathway(ctx: PathwayContext | None) -> contextvars.Token[PathwayContext | None]:
    """Make ``ctx`` the current pathway; returns a token for :func:`reset_pathway`."""
    return _current.set(ctx)


def reset_pathway(token: contextvars.Token[PathwayContext | None]) -> None:
    """Undo a :func:`set_pathway`."""
    _current.reset(token)


@contextlib.contextmanager
def use_pathway(ctx: PathwayContext | None) -> Iterator[PathwayContext | None]:
    """``with use_pathway(ctx):`` produce as if ``ctx`` had just been consumed."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def merge_contexts(*contexts: PathwayContext | None) -> PathwayContext | None:
    """Fan-in: one pathway for output built from several inputs.

    The rule is deterministic: keep the context whose pathway started first (the worst-case
    latency from origin), ties broken by the earliest edge start, then the smallest hash. Datadog's
    Go library keeps one at random and its Python library the last decoded; either would make the
    same input give different maps.
    """
    present = [c for c in contexts if c is not None]
    if not present:
        return None
    return min(present, key=lambda c: (c.pathway_start_ms, c.edge_start_ms, c.hash))
