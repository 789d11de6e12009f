"""Is it the broker or my client? A flight recorder of recent requests and a latency breakdown.

``FlightRecorder`` keeps a client's last requests with their four timings (write wait, time to
write, read wait, time to read); ``breakdown`` tells, per broker and request key, which part holds
the slow requests' time and what to do about it; ``kafkahooks latency DUMP...`` does the same from
the command line.
"""

from kafkahooks.latency._format import FIELDS, SCHEMA, VERSION
from kafkahooks.latency._recorder import FlightRecorder

__all__ = ["FIELDS", "SCHEMA", "VERSION", "Breakdown", "FlightRecorder", "Group", "Spread", "breakdown", "load"]


def __getattr__(name: str) -> object:  # the analysis loads on first use only
    if name in ("Breakdown", "Group", "Spread", "breakdown", "load"):
        from kafkahooks.latency import _analysis

        return getattr(_analysis, name)
    raise AttributeError(f"module 'kafkahooks.latency' has no attribute {name!r}")
