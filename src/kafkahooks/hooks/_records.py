"""The records of the batched telemetry path, as the export worker hands them to hooks:
:class:`Request` (one per request, filled by a connection's tap; ``on_requests_finished``),
:class:`BatchInfo` (one per record batch it carried), :class:`HandOut` (records of one batch handed
to the application; ``on_batches_handed_out``) and :class:`ConnectionEvent`
(``on_connection_events``); and what a Fetch response says about consumer lag
(:func:`fetch_lags`). Data and what is derived from it alone (no I/O, no client): the log that
carries them is :mod:`kafkahooks.hooks._requests`, the tracker that makes hand-outs
:mod:`kafkahooks.hooks._handout`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kafkahooks.hooks._types import BrokerMeta, Compression


class BatchInfo(NamedTuple):
    """One v2 record batch, read from the raw bytes of a Produce request or a Fetch response."""

    num_records: int
    uncompressed_bytes: int
    """Size of the records section before compression; -1 when it cannot be known."""
    compressed_bytes: int
    compression: Compression
    base_offset: int
    last_offset: int
    first_timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...]
    """The first record's headers whose keys some plugin or hook asked for (exact key match)."""
    first_record: bytes | None = None
    """The first record's raw bytes, when reading its headers was left to the export worker
    (:meth:`Request.resolve`); None once read, or when read on the spot."""


_new_tuple = tuple.__new__


class Request:
    """One request's life on a connection: filled by the tap, then read by the fused plugins.

    Times are monotonic nanoseconds (``*_ns`` stamps) or durations; the plugins convert stamps to
    wall-clock time on the export worker. Once offered to a :class:`RequestLog` the tap never
    changes it again. (No ``__slots__``: the class holds every default, so building one per request
    sets five attributes, not twenty.)
    """

    end_offset = 0
    """The tap's byte offset of the frame's end on its connection (kafka-python)."""
    write_start_ns = 0
    write_end_ns = 0
    write_wait_ns = 0
    time_to_write_ns = 0
    bytes_written = 0
    bytes_read = 0
    read_wait_ns = 0
    time_to_read_ns = 0
    read_end_ns = 0
    write_err: BaseException | None = None
    read_err: BaseException | None = None
    batches: dict[tuple[str, int], BatchInfo] | None = None
    """Produce: the batch each (topic, partition) carried."""
    fetched: list[tuple[str, int, BatchInfo]] | None = None
    """Fetch: every data batch the response carried, in order."""
    watermarks: list[tuple[str, int, int]] | None = None
    """Fetch: ``(topic, partition, high watermark)`` for every partition answered without error,
    records or not (consumer lag at no extra request)."""
    acks: list[tuple[str, int, int, int]] | None = None
    """Produce: ``(topic, partition, error_code, base_offset)`` per partition answered;
    OffsetCommit: ``(topic, partition, error_code, offset)``."""
    commits: tuple[str, dict[tuple[str, int], int]] | None = None
    """OffsetCommit: the group and the offset asked for per (topic, partition)."""
    deferred: tuple[Any, frozenset[str]] | None = None
    """(header reader, wanted keys) when the batches' first-record headers are still to be read."""

    def __init__(self, meta: BrokerMeta, key: int, created_ns: int, size: int, expects_response: bool) -> None:
        self.meta = meta
        self.key = key
        self.created_ns = created_ns
        self.size = size
        self.expects_response = expects_response

    def resolve(self) -> None:
        """Read the first-record headers the tap left for later (on the export worker, where it
        runs warm, in a loop, instead of cold on the I/O path once per request)."""
        deferred, self.deferred = self.deferred, None
        if deferred is None or not self.batches:
            return
        read, keys = deferred
        batches = self.batches
        for tp, info in batches.items():  # values replaced in place: the dict's size never changes
            first = info[8]  # first_record
            if first is not None:
                # All nine fields at once, without the named tuple's Python-level _replace.
                batches[tp] = _new_tuple(BatchInfo, (*info[:7], read(first, keys), None))

    def accepted(self) -> dict[tuple[str, int], int]:
        """Produce: the partitions whose batch the broker accepted, with its base offset (-1 under
        ``acks=0``, where being written is all a producer learns); empty when nothing was."""
        acks = self.acks
        if acks is not None:
            return {(t, p): base for t, p, code, base in acks if code == 0}
        if not self.expects_response and self.err is None and self.batches:
            return dict.fromkeys(self.batches, -1)
        return {}

    @property
    def err(self) -> BaseException | None:
        """The write error if there was one, else the read error."""
        return self.write_err if self.write_err is not None else self.read_err

    @property
    def duration_ns(self) -> int:
        """``time_to_write + read_wait + time_to_read``, franz-go's ``DurationE2E``."""
        return self.time_to_write_ns + self.read_wait_ns + self.time_to_read_ns

    def __repr__(self) -> str:
        return f"<Request key={self.key} broker={self.meta.name} bytes={self.bytes_written}/{self.bytes_read}>"


class ConnectionEvent(NamedTuple):
    """A connect, disconnect or throttle, as ``on_connection_events`` hooks receive it (rare: not
    per request)."""

    kind: str
    """``"connect"``, ``"disconnect"`` or ``"throttle"``."""
    meta: BrokerMeta
    value: int
    """Connect: set-up time in ns (dial, TLS, ApiVersions, SASL); throttle: the interval in ns;
    disconnect: 0."""
    err: BaseException | None
    """Connect: the error that failed the attempt, or None; None otherwise."""
    throttled_after_response: bool = False
    """Throttle: the client must hold back its next request to that broker (KIP-219), rather than
    the broker having delayed this response already (``on_broker_throttle``'s argument)."""


class HandOut(NamedTuple):
    """Records of one batch handed to the application, as ``on_batches_handed_out`` hooks receive
    them on the export worker."""

    topic: str
    partition: int
    info: BatchInfo
    """The batch as the connection's tap read it from the Fetch response."""
    handed: int
    """Records of the batch handed out (exact, from offsets; fewer than the batch holds when the
    consumer started or stopped inside it)."""
    entered_ns: int
    """Wall-clock time of the batch's first hand-out."""
    entering: tuple[Any, ...]
    """The hooks that saw the batch enter (those implementing ``on_fetch_batch_entered``)."""
    tokens: tuple[Any, ...]
    """What each of those hooks' ``on_fetch_batch_entered`` returned, in the same order."""

    def token(self, hook: Any) -> Any:
        """What ``hook``'s ``on_fetch_batch_entered`` returned for this batch (None for a hook
        without one, or whose call failed)."""
        i = position(self.entering, hook)
        return None if i is None else self.tokens[i]


def position(hooks: tuple[Any, ...], hook: Any) -> int | None:
    """Where ``hook`` itself (by identity, whatever its ``__eq__``) sits in ``hooks``, or None."""
    for i, other in enumerate(hooks):
        if other is hook:
            return i
    return None


def fetch_lags(r: Request, wall_offset_ns: int) -> list[tuple[str, int, int, float]]:
    """Consumer lag after a Fetch response, per partition it answered: ``(topic, partition,
    records behind the high watermark, seconds)``. Records: the high watermark minus the offset
    after the last record fetched (0 for a partition answered empty: the consumer is at the end).
    Seconds: 0 when caught up, else how old the last fetched record was when the response was read
    (its read time, the tap's monotonic stamp plus ``wall_offset_ns``, the wall clock minus the
    monotonic one, minus its batch's first timestamp: an upper bound of the time lag, Datadog's
    ``kafka_lag_seconds``). Every plugin reading the same response gets the same figures, however
    late its pass."""
    now_ms = (r.read_end_ns + wall_offset_ns) // 1_000_000
    marks = r.watermarks
    if not marks:
        return []
    ends: dict[tuple[str, int], tuple[int, int]] = {}
    for topic, partition, info in r.fetched or ():
        ends[(topic, partition)] = (info.last_offset + 1, info.first_timestamp_ms)
    out = []
    for topic, partition, high in marks:
        end = ends.get((topic, partition))
        if end is None:
            out.append((topic, partition, 0, 0.0))
            continue
        behind = high - end[0]
        if behind > 0:
            out.append((topic, partition, behind, max(now_ms - end[1], 0) / 1000.0))
        else:
            out.append((topic, partition, 0, 0.0))
    return out
