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

from itertools import chain
from typing import Any, Final, NamedTuple

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


RawBatch = tuple[Any, ...]
"""A fetched batch as kafkahooks carries it from the Fetch response to its hand-out: a plain
tuple of numbers, bytes and strings, ``(num_records, uncompressed_bytes, compressed_bytes, codec,
base_offset, last_offset, first_timestamp_ms, first_record, key, value, key, value, ...)``: a
:class:`BatchInfo`'s first seven fields in its order (the codec as its number), then its
``first_record``, then its header pairs laid flat (:func:`raw_headers`).

Why not the :class:`BatchInfo` itself: a Fetch response of small batches makes thousands of these
at once, alive until they are handed out and the export worker's pass, and the collector never
stops tracking a named tuple (a subclass), nor a tuple holding an enum member, a dict, or a tuple
it has not untracked yet. It looks at a young pass's survivors containers first and contents
after, so a tuple of header pairs inside the batch's tuple left the batch's tuple tracked at its
first pass, and it was promoted. Tracked, they outlived the young passes and brought on middle
and full passes over the whole heap: about 2 µs of a one-record batch (benchmarks/NOTES.md, *The collector,
for small batches*). A flat tuple of numbers, bytes and strings is untracked the first time the
collector sees it. Plugins outside kafkahooks still get :class:`BatchInfo`
(:attr:`Request.fetched`, :attr:`HandOut.info`, ``on_fetch_batch_entered``), built when asked
for; kafkahooks' own read the fields by position (below)."""

# Positions of BatchInfo's first seven fields, in it and in a RawBatch alike (then a RawBatch's
# first_record, at 7).
NUM_RECORDS: Final = 0
UNCOMPRESSED_BYTES: Final = 1
COMPRESSED_BYTES: Final = 2
BASE_OFFSET: Final = 4
LAST_OFFSET: Final = 5
FIRST_TIMESTAMP: Final = 6
RAW_HEADERS: Final = 8
"""Where a :data:`RawBatch`'s header pairs start: keys at even offsets from here, values after."""

_COMPRESSIONS = tuple(Compression(c) for c in range(5))
_new_tuple = tuple.__new__


def raw_headers(raw: RawBatch) -> tuple[tuple[str, bytes], ...]:
    """A :data:`RawBatch`'s header pairs, as :attr:`BatchInfo.headers` holds them."""
    return tuple(zip(raw[RAW_HEADERS::2], raw[RAW_HEADERS + 1 :: 2], strict=True)) if len(raw) > RAW_HEADERS else ()


def batch_info(raw: RawBatch | BatchInfo) -> BatchInfo:
    """The :class:`BatchInfo` of a :data:`RawBatch` (a :class:`BatchInfo` is returned as it is)."""
    if isinstance(raw, BatchInfo):
        return raw
    codec = raw[3]
    return _new_tuple(
        BatchInfo,
        (
            raw[0],
            raw[1],
            raw[2],
            _COMPRESSIONS[codec] if 0 <= codec < 5 else Compression.NONE,
            raw[4],
            raw[5],
            raw[6],
            raw_headers(raw),
            raw[7],
        ),
    )


def raw_batch(info: BatchInfo) -> RawBatch:
    """The :data:`RawBatch` of a :class:`BatchInfo`."""
    return (*info[:3], int(info[3]), *info[4:7], info[8], *chain.from_iterable(info[7]))


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
    fetched_raw: list[tuple[str, int, RawBatch]] | None = None
    """Fetch: ``(topic, partition, batch)`` for every data batch the response carried, in order,
    each batch a :data:`RawBatch` (what kafkahooks' own plugins read; :attr:`fetched` for
    :class:`BatchInfo`)."""
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
    def fetched(self) -> list[tuple[str, int, BatchInfo]] | None:
        """Fetch: ``(topic, partition, info)`` for every data batch the response carried, in order
        (built from :attr:`fetched_raw` at the first access; None when it is None)."""
        raw = self.fetched_raw
        if raw is None:
            return None
        built: list[tuple[str, int, BatchInfo]] | None = self.__dict__.get("_fetched")
        if built is None or len(built) != len(raw):
            built = self.__dict__["_fetched"] = [(t, p, batch_info(b)) for t, p, b in raw]
        return built

    @fetched.setter
    def fetched(self, entries: list[tuple[str, int, BatchInfo]] | None) -> None:
        self.fetched_raw = None if entries is None else [(t, p, raw_batch(info)) for t, p, info in entries]
        self.__dict__.pop("_fetched", None)

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
    batch: RawBatch
    """The batch as the connection's tap read it from the Fetch response, as a :data:`RawBatch`
    (:attr:`info` for its :class:`BatchInfo`)."""
    handed: int
    """Records of the batch handed out (exact, from offsets; fewer than the batch holds when the
    consumer started or stopped inside it)."""
    entered_ns: int
    """Wall-clock time of the batch's first hand-out."""
    entering: tuple[Any, ...]
    """The hooks that saw the batch enter (those implementing ``on_fetch_batch_entered``)."""
    tokens: tuple[Any, ...]
    """What each of those hooks' ``on_fetch_batch_entered`` returned, in the same order."""

    @property
    def info(self) -> BatchInfo:
        """The batch as the connection's tap read it from the Fetch response (built at each
        access from :attr:`batch`)."""
        return batch_info(self.batch)

    def token(self, hook: Any) -> Any:
        """What ``hook``'s ``on_fetch_batch_entered`` returned for this batch (None for a hook
        without one, or whose call failed)."""
        i = position(self.entering, hook)
        return None if i is None else self.tokens[i]


RawHandOut = tuple[Any, ...]
"""A hand-out as it waits for the export worker: ``(topic, partition, handed, entered_ns, batch,
token, token, ...)``, one token per hook of the log's ``entering``, in its order. A plain tuple
for the reason :data:`RawBatch` is one: a ``getmany`` hands out thousands of batches at once, and
a :class:`HandOut` (a named tuple holding the hooks) was never untracked, so it was promoted and
brought on full passes until the worker's pass let go of it. Queued only for hooks outside
kafkahooks, which get :class:`HandOut` (:func:`hand_out`); kafkahooks' own fold each hand-out as
it is made (``kafkahooks_fold_handout``)."""


def hand_out(raw: RawHandOut, entering: tuple[Any, ...]) -> HandOut:
    """The :class:`HandOut` of a :data:`RawHandOut` whose log's entering hooks are ``entering``."""
    return _new_tuple(HandOut, (raw[0], raw[1], raw[4], raw[2], raw[3], entering, raw[5:]))


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
    for topic, partition, batch in r.fetched_raw or ():
        ends[(topic, partition)] = (batch[LAST_OFFSET] + 1, batch[FIRST_TIMESTAMP])
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
