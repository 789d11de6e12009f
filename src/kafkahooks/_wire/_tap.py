"""The client-agnostic timing engine behind every hooked connection.

A :class:`ConnectionTap` follows one broker connection's requests through their life, with the
timings of reference/kgo-hooks.md::

    created --write_wait--> write start --time_to_write--> write end --read_wait--> read start
        --time_to_read--> response read (read hook) --> response decoded (batch, throttle, e2e hooks)

The client adapters (``kafkahooks._wire.aiokafka`` and ``kafkahooks._wire.kafka_python``) are the
only code that touches client internals; they feed the tap plain facts (a request of key K and N bytes
was created, N bytes left the socket between t0 and t1, a frame of N bytes arrived at t). A tap is
used by one thread or event loop at a time: the connection's own I/O context.

Two audiences: user hooks get franz-go's per-event calls through the dispatcher; kafkahooks' own
plugins get the finished :class:`~kafkahooks.hooks._records.Request` itself, appended once to the
client's request log (the batched path, ``on_requests_finished``), and the fetched batches through the hand-out tracker.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable

from kafkahooks import _clock
from kafkahooks._wire import _batches
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._records import BatchInfo, Request, batch_info
from kafkahooks.hooks._types import (
    ApiKey,
    BrokerE2E,
    BrokerMeta,
    ClientClosed,
    ConnectionClosed,
    FetchBatchMetrics,
    ProduceBatchMetrics,
)

_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_SIZE = struct.Struct(">i")

ProduceTopics = Iterable[tuple[str, Iterable[tuple[int, bytes | memoryview | None]]]]
"""A Produce request's payload: ``[(topic, [(partition, records bytes), ...]), ...]``."""


class ConnectionTap:
    """Turns one connection's I/O facts into hook calls.

    Slotted: its attributes are read on every request and every chunk read, and a class with 30
    or more instance attributes no longer shares its instances' dict keys in CPython 3.11, so
    each read went through the dict (``LOAD_ATTR_WITH_HINT``) instead of a fixed offset.
    """

    __slots__ = (
        "_closed",
        "_decoding",
        "_deferred",
        "_enqueued",
        "_frame_left",
        "_frame_size",
        "_in_flight",
        "_last_read_end_ns",
        "_sent",
        "_size_prefix",
        "_unsent",
        "connect_start_ns",
        "connected",
        "decompress",
        "defer_headers",
        "dispatch",
        "first_headers",
        "handouts",
        "header_keys",
        "io_hooks",
        "log",
        "log_fetch_batches",
        "log_keys",
        "log_watermarks",
        "meta",
        "produce_header_keys",
        "user_fetch_batches",
        "user_produce_batches",
        "want_commits",
        "want_fetch_batches",
        "want_produce_batches",
    )

    def __init__(
        self,
        dispatch: HookDispatcher,
        meta: BrokerMeta,
        decompress: _batches.Decompress | None = None,
        first_headers: _batches.FirstHeaders | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.meta = meta
        self.decompress = decompress
        self.first_headers = first_headers
        log = self.log = dispatch.request_log
        self.handouts = dispatch.handouts
        self.user_produce_batches = dispatch.has_produce_batch_hooks
        self.user_fetch_batches = dispatch.has_fetch_batch_hooks
        self.want_produce_batches = self.user_produce_batches or (log is not None and log.produce_batches)
        # Lag needs the batches too (the offset after the last one fetched per partition).
        self.log_fetch_batches = log is not None and (log.fetch_batches or log.watermarks)
        self.log_watermarks = log is not None and log.watermarks
        self.want_fetch_batches = (
            self.user_fetch_batches or self.log_fetch_batches or self.handouts is not None or self.log_watermarks
        )
        self.header_keys = dispatch.batch_header_keys
        self.produce_header_keys = dispatch.produce_header_keys
        self.want_commits = dispatch.has_commit_hooks or (log is not None and log.commits)
        # Produced batches' first-record headers are read by the export worker, from a short copy,
        # unless a user hook needs them on the spot (on_produce_batch_written's metrics.headers).
        # kafkahooks' own plugins want none: they find their batches by first timestamp.
        self.defer_headers = bool(self.produce_header_keys) and not self.user_produce_batches
        self._deferred = (_batches.read_headers, self.produce_header_keys)
        self.log_keys = log.keys if log is not None else frozenset()
        self.io_hooks = dispatch.has_io_hooks
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
        if err is not None:
            error = err
        else:
            closed = ClientClosed if self.dispatch.closing else ConnectionClosed
            error = closed(f"connection to broker {self.meta.name} closed")
        now = _clock.monotonic_ns()
        while self._unsent:
            req = self._unsent.popleft()
            partial = max(0, min(req.size, self._sent - (req.end_offset - req.size)))
            self.written(req, partial, req.write_start_ns or now, now, error)
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
                req.read_end_ns = now
                req.bytes_read = got
                if self.io_hooks:
                    self.dispatch.broker_read(self.meta, req.key, got, req.read_wait_ns, req.time_to_read_ns, error)
            else:
                req.read_end_ns = now
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
        req = Request(self.meta, key, created_ns, size, expects_response)
        if produce is not None and self.want_produce_batches:
            req.batches = self._produce_batches(produce)
            if self.defer_headers:
                req.deferred = self._deferred
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
            self.written(req, req.size, req.write_start_ns or start_ns, end_ns, None)
        if err is not None and unsent:
            req = unsent.popleft()
            partial = max(0, self._sent - (req.end_offset - req.size))
            self.written(req, partial, req.write_start_ns or start_ns, end_ns, err)

    def written(self, req: Request, nbytes: int, start_ns: int, end_ns: int, err: BaseException | None) -> None:
        """``nbytes`` of ``req``'s frame left between ``start_ns`` and ``end_ns`` (aiokafka hands the
        whole frame to the transport in one call; kafka-python's frames end inside :meth:`sent`)."""
        req.write_start_ns = start_ns
        req.write_end_ns = end_ns
        req.bytes_written = nbytes
        wait = start_ns - req.created_ns
        req.write_wait_ns = wait if wait > 0 else 0
        took = end_ns - start_ns
        req.time_to_write_ns = took if took > 0 else 0
        if self.io_hooks:
            self.dispatch.broker_write(self.meta, req.key, nbytes, req.write_wait_ns, req.time_to_write_ns, err)
        if err is not None:
            self._e2e(req, err, None)
        elif req.expects_response:
            self._in_flight.append(req)
        else:
            if req.batches and self.user_produce_batches:
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
        write_end = req.write_end_ns
        read_start = write_end if write_end > self._last_read_end_ns else self._last_read_end_ns
        req.read_wait_ns = read_start - write_end
        took = now_ns - read_start
        req.time_to_read_ns = took if took > 0 else 0
        req.read_end_ns = now_ns
        req.bytes_read = size
        self._last_read_end_ns = now_ns
        if self.io_hooks:
            self.dispatch.broker_read(self.meta, req.key, size, req.read_wait_ns, req.time_to_read_ns, None)
        return req

    def next_decoded(self) -> Request | None:
        """The oldest read response not yet decoded (kafka-python decodes after reading)."""
        return self._decoding.popleft() if self._decoding else None

    def produce_acked(self, req: Request, partitions: list[tuple[str, int, int, int]]) -> None:
        """A Produce response was decoded: ``(topic, partition, error_code, base_offset)`` per partition."""
        batches = req.batches
        if not batches:
            return
        acks = req.acks = partitions
        if self.user_produce_batches:
            for topic, partition, error_code, base_offset in acks:
                if error_code == 0:
                    info = batches.get((topic, partition))
                    if info is not None:
                        self.dispatch.produce_batch_written(
                            self.meta, topic, partition, _produce_metrics(info, base_offset)
                        )

    def fetched(
        self,
        req: Request,
        topic: str,
        partition: int,
        records: bytes | memoryview | None,
        high_watermark: int = -1,
        error_code: int = 0,
    ) -> None:
        """One partition's records (and high watermark) from a decoded Fetch response."""
        if self.log_watermarks and error_code == 0 and high_watermark >= 0:
            marks = req.watermarks
            if marks is None:
                marks = req.watermarks = []
            marks.append((topic, partition, high_watermark))
        batches = _batches.walk(records, self.decompress, self.header_keys, self.first_headers)
        if not batches:
            return
        if self.user_fetch_batches:
            fetch_batch_read = self.dispatch.fetch_batch_read
            for batch in batches:
                fetch_batch_read(self.meta, topic, partition, FetchBatchMetrics(*batch_info(batch)[:8]))
        if self.log_fetch_batches:
            fetched = req.fetched_raw
            if fetched is None:
                fetched = req.fetched_raw = []
            fetched.extend((topic, partition, batch) for batch in batches)
        if self.handouts is not None:
            self.handouts.fetched(topic, partition, batches)

    def commit_acked(self, req: Request, partitions: Iterable[tuple[str, int, int]]) -> None:
        """An OffsetCommit response was decoded: ``(topic, partition, error_code)`` per partition."""
        if req.commits is None:
            return
        group, offsets = req.commits
        acks = req.acks = []
        for topic, partition, error_code in partitions:
            offset = offsets.get((topic, partition))
            if offset is not None:
                acks.append((topic, partition, error_code, offset))
                if error_code == 0:
                    self.dispatch.offsets_committed(group, topic, partition, offset)

    def decoded(self, req: Request, throttle_ms: int, throttled_after_response: bool = True) -> None:
        """The response to ``req`` was decoded: report throttling and the request's end to end."""
        if throttle_ms > 0:
            self.dispatch.broker_throttle(self.meta, throttle_ms * 1_000_000, throttled_after_response)
        if self.io_hooks:
            self._e2e(req, None, None)
        elif req.key in self.log_keys:  # no hook wants the event: straight to the request log
            self.log.offer(req)  # type: ignore[union-attr]

    # -- helpers ----------------------------------------------------------------------------------

    def _e2e(self, req: Request, write_err: BaseException | None, read_err: BaseException | None) -> None:
        req.write_err = write_err
        req.read_err = read_err
        key = req.key
        if self.io_hooks and self.dispatch.wants_e2e(key):
            self.dispatch.broker_e2e(
                self.meta,
                key,
                BrokerE2E(
                    req.bytes_written,
                    req.bytes_read,
                    req.write_wait_ns,
                    req.time_to_write_ns,
                    req.read_wait_ns,
                    req.time_to_read_ns,
                    write_err,
                    read_err,
                    req.write_end_ns,
                    req.read_end_ns,
                ),
            )
        if key in self.log_keys:
            self.log.offer(req)  # type: ignore[union-attr]

    def _produce_batches(self, produce: ProduceTopics) -> dict[tuple[str, int], BatchInfo]:
        out: dict[tuple[str, int], BatchInfo] = {}
        for topic, partitions in produce:
            for partition, records in partitions:
                info = _batches.produced(records, self.produce_header_keys, self.defer_headers) if records else None
                if info is not None:  # one uncompressed batch, as producers send it
                    out[(topic, partition)] = info
                    continue
                infos = [
                    batch_info(b)
                    for b in _batches.walk(
                        records, self.decompress, self.produce_header_keys, self.first_headers, self.defer_headers
                    )
                ]
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


def _produce_metrics(info: BatchInfo, base_offset: int) -> ProduceBatchMetrics:
    return ProduceBatchMetrics(
        info.num_records,
        info.uncompressed_bytes,
        info.compressed_bytes,
        info.compression,
        base_offset,
        info.first_timestamp_ms,
        info.headers,
    )
