"""What data streams aggregate and export: a checkpoint as queued (:class:`Point`), the groups
and 10-second buckets it is aggregated into (DDSketches at Datadog's accuracy), and the
:class:`Exporter` protocol that receives them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from ddsketch import DDSketch

RELATIVE_ACCURACY = 1 / 129
"""gamma = 1.015625, as Datadog's backend expects."""


class Point(NamedTuple):
    """One checkpoint (or a batch of records checkpointed together), as queued on the hot path."""

    at_ns: int
    edge_tags: tuple[str, ...]
    hash: int
    parent_hash: int
    edge_latency_ns: int
    pathway_latency_ns: int
    payload_bytes: float
    weight: int


def _sketch() -> DDSketch:
    """A sketch at Datadog's accuracy; ddsketch is loaded by the first bucket aggregated (none are
    when every exporter reads points only)."""
    from ddsketch import DDSketch

    return DDSketch(RELATIVE_ACCURACY)


@dataclass
class StatsGroup:
    """Aggregated checkpoints of one (edge tags, hash, parent hash) in one bucket."""

    edge_tags: tuple[str, ...]
    hash: int
    parent_hash: int
    edge_latency: DDSketch = field(default_factory=_sketch)
    pathway_latency: DDSketch = field(default_factory=_sketch)
    payload_size: DDSketch = field(default_factory=_sketch)
    messages: int = 0
    first_ns: int = 0
    """When the first checkpoint aggregated here was taken (epoch ns; 0 when none was)."""
    last_ns: int = 0
    """When the last one was: a rate over ``last_ns - first_ns`` is the traffic's own, not the bucket's."""


@dataclass
class StatsBucket:
    """One 10-second, epoch-aligned bucket."""

    start_ns: int
    duration_ns: int
    groups: dict[tuple[tuple[str, ...], int, int], StatsGroup] = field(default_factory=dict)
    backlogs: dict[tuple[str, ...], int] = field(default_factory=dict)
    lags: dict[tuple[str, ...], tuple[int, float]] = field(default_factory=dict)
    """Consumer lag per ``type:kafka_lag`` tag set: (records, seconds), the bucket's last reading."""


class Exporter(Protocol):
    """Receives data-stream statistics on the export worker; must not block for long.

    An exporter may say which of the two it reads with class attributes ``uses_points`` and
    ``uses_buckets`` (both default to True): when no exporter of a :class:`DataStreams` reads
    buckets, checkpoints are not aggregated into sketches at all. With ``kafkahooks_raw_points =
    True`` it gets the points as the plain tuples they were queued as (a :class:`Point`'s fields,
    by position) instead of :class:`Point` s built for it.
    """

    def export_points(self, service: str, env: str, points: Sequence[Point]) -> None:
        """Raw checkpoints as they were drained (an exporter may ignore them)."""

    def export_buckets(self, service: str, env: str, buckets: Sequence[StatsBucket]) -> None:
        """Closed buckets (an exporter may ignore them)."""
