"""Last line of defence: kafkahooks' own bugs must never reach the client.

The adapters wrap every call into the engine with ``try/except Exception`` (free in CPython 3.11
when nothing is raised) and report here: counted per place, logged at most once a minute.
"""

from __future__ import annotations

from kafkahooks import _fork
from kafkahooks._log import RateLimitedLog, get_logger
from kafkahooks._selfstats import counter

_lock = _fork.Lock()
_log = RateLimitedLog(get_logger("kafkahooks"), 60.0)

_total = counter("internal_errors", "Exceptions raised inside kafkahooks itself and kept from the client")
internal_errors: dict[str, int] = {}
"""Exceptions raised inside kafkahooks itself (not by user hooks), per place. Should stay empty."""


def internal_error(where: str, exc: Exception) -> None:
    """Count and log (rate-limited) an exception kafkahooks raised inside a client."""
    with _lock:
        internal_errors[where] = internal_errors.get(where, 0) + 1
    _total.add()
    _log.warning(
        where, "kafkahooks_internal_error", where=where, error_type=type(exc).__qualname__, error=repr(exc)[:200]
    )
