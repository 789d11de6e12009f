"""The values hooks receive: broker metadata, request keys, timings and batch metrics.

Every duration is an integer number of nanoseconds (names end in ``_ns``); every size is in bytes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class ApiKey(enum.IntEnum):
    """Kafka request keys worth naming (the numbers are the wire values)."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    SASL_HANDSHAKE = 17
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    INIT_PRODUCER_ID = 22
    ADD_PARTITIONS_TO_TXN = 24
    ADD_OFFSETS_TO_TXN = 25
    END_TXN = 26
    TXN_OFFSET_COMMIT = 28
    SASL_AUTHENTICATE = 36
    DESCRIBE_CLUSTER = 60
    CONSUMER_GROUP_HEARTBEAT = 68
    SHARE_FETCH = 78
    SHARE_ACKNOWLEDGE = 79


_KEY_NAMES: dict[int, str] = {k.value: "".join(p.title() for p in k.name.split("_")) for k in ApiKey}


def key_name(key: int) -> str:
    """Return Kafka's name for a request key (``"Produce"``, ``"Fetch"``), or ``"Unknown(N)"``.

    The result is cached per key, so it is safe to call on the I/O path.
    """
    name = _KEY_NAMES.get(key)
    if name is None:
        name = _KEY_NAMES[key] = f"Unknown({key})"
    return name


class ConnectionClosed(ConnectionError):
    """The error hooks receive for requests still on a connection that closed without a transport
    error of its own (the client closed it, or the broker shut it cleanly)."""


class ClientClosed(ConnectionClosed):
    """A :class:`ConnectionClosed` during the client's own ``close()``/``stop()``: the requests it
    ends (typically a consumer's pending long poll) were cut short on purpose, not failed. The
    built-in metrics and spans do not count these as errors."""


class Compression(enum.IntEnum):
    """Record-batch compression codec, as in the low three bits of a v2 batch's attributes."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


@dataclass(frozen=True, slots=True)
class BrokerMeta:
    """The broker a connection talks to.

    Seed (bootstrap) connections, made before the cluster's node ids are known, get a negative
    ``node_id`` (``-1`` for the first seed, ``-2`` for the second...) and are named ``seed_N``
    (zero-based), as franz-go names them.
    """

    node_id: int
    """The broker's node id; negative for seed brokers."""
    host: str
    """The host name or address the client dialled."""
    port: int
    """The TCP port the client dialled."""
    rack: str | None = None
    """The broker's rack, when the cluster metadata names one."""

    @property
    def name(self) -> str:
        """``"seed_N"`` for seed brokers, otherwise the node id as a string."""
        if self.node_id < 0:
            return f"seed_{-self.node_id - 1}"
        return str(self.node_id)

    @classmethod
    def seed(cls, index: int, host: str, port: int) -> BrokerMeta:
        """Metadata for the ``index``-th (zero-based) bootstrap broker."""
        return cls(-(index + 1), host, port, None)


@dataclass(frozen=True, slots=True)
class BrokerE2E:
    """One request's whole life on a connection, handed to ``on_broker_e2e``.

    ``write_err`` and ``read_err`` are transport errors only (I/O, connection closed, bad frame);
    Kafka error codes inside a response are not visible here.
    """

    bytes_written: int
    """Bytes of the request frame handed to the socket (size prefix included); partial on error."""
    bytes_read: int
    """Bytes of the response frame read (size prefix included); 0 when there was no response."""
    write_wait_ns: int
    """From the request's creation to the start of its write."""
    time_to_write_ns: int
    """The write itself."""
    read_wait_ns: int
    """From the end of the write until the response started to be read (queued behind earlier responses)."""
    time_to_read_ns: int
    """From the read start until the response was fully read (broker time and the round trip)."""
    write_err: BaseException | None = None
    """The error that ended the write, if any."""
    read_err: BaseException | None = None
    """The error that ended the read, if any (including the connection dying with the request in flight)."""
    write_end_ns: int = 0
    """When the write ended, on the monotonic clock (``time.monotonic_ns``)."""
    read_end_ns: int = 0
    """When the response was fully read (or the connection died with it), on the monotonic clock;
    0 when no response was read. With ``time_to_read_ns`` it places the read in time without
    shared state between hooks: on kafka-python, several responses read in one chunk fire their
    read hooks together, before the first one's end-to-end event."""

    @property
    def duration_e2e_ns(self) -> int:
        """``time_to_write_ns + read_wait_ns + time_to_read_ns``, as franz-go's ``DurationE2E``."""
        return self.time_to_write_ns + self.read_wait_ns + self.time_to_read_ns

    @property
    def err(self) -> BaseException | None:
        """The write error if there was one, else the read error."""
        return self.write_err if self.write_err is not None else self.read_err


Headers = tuple[tuple[str, bytes], ...]
"""Record headers as the batch hooks report them: ``((key, value), ...)``."""


@dataclass(frozen=True, slots=True)
class ProduceBatchMetrics:
    """What one partition batch of a Produce request carried."""

    num_records: int
    """Records in the batch."""
    uncompressed_bytes: int
    """Size of the batch's records section before compression (records only, no batch header);
    -1 when it cannot be known (a codec whose library is not installed)."""
    compressed_bytes: int
    """Size of the records section as written; equals ``uncompressed_bytes`` when not compressed."""
    compression: Compression
    """The batch's codec."""
    base_offset: int = -1
    """The offset the broker gave the batch's first record (-1 with ``acks=0``)."""
    first_timestamp_ms: int = -1
    """The batch's first record timestamp (Unix epoch milliseconds)."""
    headers: Headers = ()
    """Headers of the batch's first record, restricted to the keys some hook asked for through a
    ``batch_header_keys`` attribute (propagation headers), the first of each key, among the first
    256 headers; a value over 8 KiB is left unread (counted as ``header_values_too_long``); empty
    otherwise."""


@dataclass(frozen=True, slots=True)
class FetchBatchMetrics:
    """What one record batch of a Fetch response carried."""

    num_records: int
    """Records in the batch."""
    uncompressed_bytes: int
    """Size of the batch's records section after decompression (records only, no batch header);
    -1 when it cannot be known (a codec whose library is not installed)."""
    compressed_bytes: int
    """Size of the records section as read; equals ``uncompressed_bytes`` when not compressed."""
    compression: Compression
    """The batch's codec."""
    base_offset: int = -1
    """Offset of the batch's first record."""
    last_offset: int = -1
    """Offset of the batch's last record (records may since have been compacted away)."""
    first_timestamp_ms: int = -1
    """The batch's first record timestamp (Unix epoch milliseconds)."""
    headers: Headers = ()
    """Headers of the batch's first record, restricted to the keys some hook asked for through a
    ``batch_header_keys`` attribute (propagation headers), the first of each key, among the first
    256 headers; a value over 8 KiB is left unread (counted as ``header_values_too_long``); empty
    otherwise."""


class ProduceRecord:
    """A record on its way through a wrapped producer, as the per-record produce hooks see it.

    ``headers`` may be changed by ``on_produce_record_buffered`` (per-record tracing injects its
    context there); the change is what gets sent. The other fields are read-only by convention.
    """

    __slots__ = ("context", "headers", "key", "offset", "partition", "timestamp_ms", "topic", "value")

    def __init__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None,
        timestamp_ms: int | None,
    ) -> None:
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
        self.timestamp_ms = timestamp_ms
        self.offset = -1
        """Filled in when the record is acknowledged (-1 until then, and for ``acks=0``)."""
        self.context: Any = None
        """Free for the per-record hooks to keep state between buffered and unbuffered."""

    def __repr__(self) -> str:
        return f"ProduceRecord(topic={self.topic!r}, partition={self.partition}, offset={self.offset})"
