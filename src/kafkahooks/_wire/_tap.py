"""The client-agnostic timing engine behind every hooked connection.

A :class:`ConnectionTap` follows one broker connection's requests through their life, with the
timings of reference/kgo-hooks.md::

    created --write_wait--> write start --time_to_write--> write end --read_wait--> read start
        --time_to_read--> response read (read hook) --> response decoded (batch, throttle, e2e hooks)

The client adapters (``kafkahooks._wire.aiokafka`` and ``kafkahooks._wire.kafka``) are the only
code that touches client internals; they feed the tap plain facts (a request of key K and N bytes
was created, N bytes left the socket between t0 and t1, a frame of N bytes arrived at t). A tap is
used by one thread or event loop at a time: the connection's own I/O context.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable

from kafkahooks import _clock
from kafkahooks._wire import _batches
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._types import (
    ApiKey,
    BrokerE2E,
    BrokerMeta,
    ConnectionClosed,
    FetchBatchMetrics,
    ProduceBatchMetrics,
)

_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_SIZE = struct.Struct(">i")

ProduceTopics = Iterable[tuple[str, Iterable[tuple[int, bytes | memoryview | None]]]]
"""A Produce request's payload: ``[(topic, [(partition, records bytes), ...]), ...]``."""


class Request:
    """One request's bookkeeping while it is on the connection."""

    __slots__ = (
        "batches",
        "bytes_read",
        "bytes_written",
        "commits",
        "created_ns",
        "end_offset",
        "expects_response",
        "key",
        "read_end_ns",
        "read_wait_ns",
        "size",
        "time_to_read_ns",
        "time_to_write_ns",
        "write_end_ns",
        "write_start_ns",
        "write_wait_ns",
    )

    def __init__(self, key: int, created_ns: int, size: int, expects_response: bool) -> None:
        self.key = key
        self.created_ns = created_ns
        self.size = size
        self.expects_response = expects_response
        self.end_offset = 0
        self.write_start_ns = 0
        self.write_end_ns = 0
        self.write_wait_ns = 0
        self.time_to_write_ns = 0
        self.bytes_written = 0
        self.bytes_read = 0
        self.read_wait_ns = 0
        self.time_to_read_ns = 0
        self.read_end_ns = 0
        self.batches: dict[tuple[str, int], _batches.BatchInfo] | None = None
        self.commits: tuple[str, dict[tuple[str, int], int]] | None = None


class ConnectionTap:
    """Turns one connection's I/O facts into hook calls."""

    def __init__(
        self, dispatch: HookDispatcher, meta: BrokerMeta, decompress: _batches.Decompress | None = None
    ) -> None:
        self.dispatch = dispatch
        self.meta = meta
        self.decompress = decompress
        self.want_produce_batches = dispatch.has_produce_batch_hooks
        self.want_fetch_batches = dispatch.has_fetch_batch_hooks
        self.header_keys = dispatch.batch_header_keys
        self.want_commits = dispatch.has_commit_hooks
        self.connect_start_ns = _clock.monotonic_ns()
        self.connected = False
        self._unsent: deque[Request] = deque()
        self._in_flight: deque[Request] = deque()
        self._decoding: deque[Request] = deque()
        self._enqueued = 0
        self._sent = 0
        self._last_read_end_ns = 0
        self._frame_left = 0
        self._frame_size = 0
        self._size_prefix = b""
        self._closed = False

    def __repr__(self) -> str:
        return f"<ConnectionTap broker={self.meta.name} in_flight={len(self._in_flight)}>"

    # -- connection lifecycle ---------------------------------------------------------------------

    def connect_done(self, err: BaseException | None, now_ns: int | None = None) -> None:
        """The connection became usable (``err`` None) or the attempt failed."""
        now = _clock.monotonic_ns() if now_ns is None else now_ns
        self.connected = err is None
        self.dispatch.broker_connect(self.meta, max(now - self.connect_start_ns, 0), err)

    def closed(self, err: BaseException | None) -> None:
        """The connection is gone: end every request still on it, then report the disconnect."""
        if self._closed:
            return
        self._closed = True
        error = err if err is not None else ConnectionClosed(f"connection to broker {self.meta.name} closed")
        now = _clock.monotonic_ns()
        while self._unsent:
            req = self._unsent.popleft()
            partial = max(0, min(req.size, self._sent - (req.end_offset - req.size)))
            self._written(req, partial, req.write_start_ns or now, now, error)
        head = True
        while self._in_flight:
            req = self._in_flight.popleft()
            if head:
                # The response at the head of the queue was the one being read.
                head = False
                read_start = max(req.write_end_ns, self._last_read_end_ns)
                got = self._frame_size - self._frame_left if self._frame_left else len(self._size_prefix)
                req.read_wait_ns = max(read_start - req.write_end_ns, 0)
                req.time_to_read_ns = max(now - read_start, 0)
                req.bytes_read = got
                self.dispatch.broker_read(self.meta, req.key, got, req.read_wait_ns, req.time_to_read_ns, error)
            self._e2e(req, None, error)
        while self._decoding:
            self._e2e(self._decoding.popleft(), None, error)
        if self.connected:
            self.connected = False
            self.dispatch.broker_disconnect(self.meta)

    # -- write side -------------------------------------------------------------------------------

    def new_request(
        self, key: int, created_ns: int, size: int, expects_response: bool, produce: ProduceTopics | None = None
    ) -> Request:
        """A request was encoded into a frame of ``size`` bytes (prefix included)."""
        req = Request(key, created_ns, size, expects_response)
        if produce is not None and self.want_produce_batches:
            req.batches = self._produce_batches(produce)
        return req

    def enqueue(self, req: Request) -> None:
        """The frame was queued behind earlier bytes on a stream transport (kafka-python)."""
        self._enqueued += req.size
        req.end_offset = self._enqueued
        self._unsent.append(req)

    def sent(self, nbytes: int, start_ns: int, end_ns: int, err: BaseException | None) -> None:
        """``nbytes`` of queued frames left through the socket between ``start_ns`` and ``end_ns``."""
        self._sent += nbytes
        unsent = self._unsent
        for req in unsent:
            if req.end_offset - req.size >= self._sent:
                break
            if req.write_start_ns == 0:
                req.write_start_ns = start_ns
        while unsent and unsent[0].end_offset <= self._sent:
            req = unsent.popleft()
            self._written(req, req.size, req.write_start_ns or start_ns, end_ns, None)
        if err is not None and unsent:
            req = unsent.popleft()
            partial = max(0, self._sent - (req.end_offset - req.size))
            self._written(req, partial, req.write_start_ns or start_ns, end_ns, err)

    def written(self, req: Request, nbytes: int, start_ns: int, end_ns: int, err: BaseException | None) -> None:
        """The whole frame was handed to the transport in one call (aiokafka)."""
        self._written(req, nbytes, start_ns, end_ns, err)

    def _written(self, req: Request, nbytes: int, start_ns: int, end_ns: int, err: BaseException | None) -> None:
        req.write_start_ns = start_ns
        req.write_end_ns = end_ns
        req.bytes_written = nbytes
        req.write_wait_ns = max(start_ns - req.created_ns, 0)
        req.time_to_write_ns = max(end_ns - start_ns, 0)
        self.dispatch.broker_write(self.meta, req.key, nbytes, req.write_wait_ns, req.time_to_write_ns, err)
        if err is not None:
            self._e2e(req, err, None)
        elif req.expects_response:
            self._in_flight.append(req)
        else:
            if req.batches:
                for (topic, partition), info in req.batches.items():
                    self.dispatch.produce_batch_written(self.meta, topic, partition, _produce_metrics(info, -1))
            self._e2e(req, None, None)

    # -- read side --------------------------------------------------------------------------------

    def received(self, data: bytes | memoryview, now_ns: int) -> None:
        """Raw bytes arrived from the socket (kafka-python): find frame boundaries."""
        pos = 0
        n = len(data)
        while pos < n:
            if self._frame_left == 0:
                need = 4 - len(self._size_prefix)
                chunk = bytes(data[pos : pos + need])
                self._size_prefix += chunk
                pos += len(chunk)
                if len(self._size_prefix) < 4:
                    return
                size = _SIZE.unpack(self._size_prefix)[0]
                self._size_prefix = b""
                if size < 0:
                    # The client rejects this frame and closes the connection; closed() reports it.
                    return
                self._frame_size = size + 4
                self._frame_left = size
            else:
                take = min(self._frame_left, n - pos)
                self._frame_left -= take
                pos += take
            if self._frame_left == 0:
                req = self.frame_read(self._frame_size, now_ns)
                if req is not None:
                    self._decoding.append(req)

    def frame_read(self, size: int, now_ns: int) -> Request | None:
        """A complete response frame of ``size`` bytes (prefix included) was read at ``now_ns``.

        Returns the request it answers (to be passed to :meth:`decoded`), or ``None`` when no
        request was waiting (the client will close the connection as out of sync).
        """
        if not self._in_flight:
            return None
        req = self._in_flight.popleft()
        read_start = max(req.write_end_ns, self._last_read_end_ns)
        req.read_wait_ns = max(read_start - req.write_end_ns, 0)
        req.time_to_read_ns = max(now_ns - read_start, 0)
        req.read_end_ns = now_ns
        req.bytes_read = size
        self._last_read_end_ns = now_ns
        self.dispatch.broker_read(self.meta, req.key, size, req.read_wait_ns, req.time_to_read_ns, None)
        return req

    def next_decoded(self) -> Request | None:
        """The oldest read response not yet decoded (kafka-python decodes after reading)."""
        return self._decoding.popleft() if self._decoding else None

    def produce_acked(self, req: Request, partitions: Iterable[tuple[str, int, int, int]]) -> None:
        """A Produce response was decoded: ``(topic, partition, error_code, base_offset)`` per partition."""
        batches = req.batches
        if not batches:
            return
        for topic, partition, error_code, base_offset in partitions:
            if error_code == 0:
                info = batches.get((topic, partition))
                if info is not None:
                    self.dispatch.produce_batch_written(
                        self.meta, topic, partition, _produce_metrics(info, base_offset)
                    )

    def fetched(self, topic: str, partition: int, records: bytes | memoryview | None) -> None:
        """One partition's records from a decoded Fetch response."""
        for info in _batches.walk(records, self.decompress, self.header_keys):
            self.dispatch.fetch_batch_read(
                self.meta,
                topic,
                partition,
                FetchBatchMetrics(
                    info.num_records,
                    info.uncompressed_bytes,
                    info.compressed_bytes,
                    info.compression,
                    info.base_offset,
                    info.last_offset,
                    info.first_timestamp_ms,
                    info.headers,
                ),
            )

    def commit_acked(self, req: Request, partitions: Iterable[tuple[str, int, int]]) -> None:
        """An OffsetCommit response was decoded: ``(topic, partition, error_code)`` per partition."""
        if req.commits is None:
            return
        group, offsets = req.commits
        for topic, partition, error_code in partitions:
            offset = offsets.get((topic, partition))
            if error_code == 0 and offset is not None:
                self.dispatch.offsets_committed(group, topic, partition, offset)

    def decoded(self, req: Request, throttle_ms: int, throttled_after_response: bool = True) -> None:
        """The response to ``req`` was decoded: report throttling and the request's end to end."""
        if throttle_ms > 0:
            self.dispatch.broker_throttle(self.meta, throttle_ms * 1_000_000, throttled_after_response)
        self._e2e(req, None, None)

    # -- helpers ----------------------------------------------------------------------------------

    def _e2e(self, req: Request, write_err: BaseException | None, read_err: BaseException | None) -> None:
        if self.dispatch.wants_e2e(req.key):
            self.dispatch.broker_e2e(
                self.meta,
                req.key,
                BrokerE2E(
                    req.bytes_written,
                    req.bytes_read,
                    req.write_wait_ns,
                    req.time_to_write_ns,
                    req.read_wait_ns,
                    req.time_to_read_ns,
                    write_err,
                    read_err,
                ),
            )

    def _produce_batches(self, produce: ProduceTopics) -> dict[tuple[str, int], _batches.BatchInfo]:
        out: dict[tuple[str, int], _batches.BatchInfo] = {}
        for topic, partitions in produce:
            for partition, records in partitions:
                infos = list(_batches.walk(records, self.decompress, self.header_keys))
                if len(infos) == 1:
                    out[(topic, partition)] = infos[0]
                elif infos:
                    # Clients send one batch per partition; sum defensively if one ever sends more.
                    first = infos[0]
                    out[(topic, partition)] = first._replace(
                        num_records=sum(i.num_records for i in infos),
                        uncompressed_bytes=-1
                        if any(i.uncompressed_bytes < 0 for i in infos)
                        else sum(i.uncompressed_bytes for i in infos),
                        compressed_bytes=sum(i.compressed_bytes for i in infos),
                    )
        return out


def _produce_metrics(info: _batches.BatchInfo, base_offset: int) -> ProduceBatchMetrics:
    return ProduceBatchMetrics(
        info.num_records,
        info.uncompressed_bytes,
        info.compressed_bytes,
        info.compression,
        base_offset,
        info.first_timestamp_ms,
        info.headers,
    )
