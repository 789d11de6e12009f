"""Helpers for testing code that uses kafkahooks: a hook that records every event it sees."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafkahooks import _fork
from kafkahooks.hooks._records import BatchInfo, ConnectionEvent, HandOut, Request
from kafkahooks.hooks._types import (
    BrokerE2E,
    BrokerMeta,
    FetchBatchMetrics,
    ProduceBatchMetrics,
    ProduceRecord,
    key_name,
)


@dataclass(frozen=True)
class HookEvent:
    """One recorded hook call: the event name (``"broker_write"``...) and its arguments by name."""

    event: str
    args: dict[str, Any] = field(default_factory=dict)
    thread: str = ""

    def __getattr__(self, name: str) -> Any:
        try:
            return self.args[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def key_name(self) -> str:
        """The request key's name, for keyed events."""
        return key_name(self.args["key"])


class RecordingHook:
    """Implements every hook and records each call, in order, safely across threads.

    ``events`` lists :class:`HookEvent` objects; :meth:`of` filters them by event name (and key).
    """

    kafkahooks_inline = True
    """Appending to a list is fast: always called inline, so a test can assert right after the call."""

    def __init__(self) -> None:
        self._lock = _fork.Lock()
        self.events: list[HookEvent] = []

    def _add(self, event: str, **args: Any) -> None:
        item = HookEvent(event, args, threading.current_thread().name)
        with self._lock:
            self.events.append(item)

    def of(self, event: str, key: int | None = None) -> list[HookEvent]:
        """The recorded events named ``event`` (``"broker_write"``, ...), optionally for one key."""
        with self._lock:
            events = list(self.events)
        return [e for e in events if e.event == event and (key is None or e.args.get("key") == key)]

    def clear(self) -> None:
        with self._lock:
            self.events.clear()

    def __iter__(self) -> Iterator[HookEvent]:
        with self._lock:
            return iter(list(self.events))

    def on_new_client(self, client: Any) -> None:
        self._add("new_client", client=client)

    def on_client_closed(self, client: Any) -> None:
        self._add("client_closed", client=client)

    def on_broker_connect(self, meta: BrokerMeta, init_ns: int, err: BaseException | None) -> None:
        self._add("broker_connect", meta=meta, init_ns=init_ns, err=err)

    def on_broker_disconnect(self, meta: BrokerMeta) -> None:
        self._add("broker_disconnect", meta=meta)

    def on_broker_write(
        self,
        meta: BrokerMeta,
        key: int,
        bytes_written: int,
        write_wait_ns: int,
        time_to_write_ns: int,
        err: BaseException | None,
    ) -> None:
        self._add(
            "broker_write",
            meta=meta,
            key=key,
            bytes_written=bytes_written,
            write_wait_ns=write_wait_ns,
            time_to_write_ns=time_to_write_ns,
            err=err,
        )

    def on_broker_read(
        self,
        meta: BrokerMeta,
        key: int,
        bytes_read: int,
        read_wait_ns: int,
        time_to_read_ns: int,
        err: BaseException | None,
    ) -> None:
        self._add(
            "broker_read",
            meta=meta,
            key=key,
            bytes_read=bytes_read,
            read_wait_ns=read_wait_ns,
            time_to_read_ns=time_to_read_ns,
            err=err,
        )

    def on_broker_e2e(self, meta: BrokerMeta, key: int, e2e: BrokerE2E) -> None:
        self._add("broker_e2e", meta=meta, key=key, e2e=e2e)

    def on_broker_throttle(self, meta: BrokerMeta, interval_ns: int, throttled_after_response: bool) -> None:
        self._add(
            "broker_throttle", meta=meta, interval_ns=interval_ns, throttled_after_response=throttled_after_response
        )

    def on_produce_batch_written(
        self, meta: BrokerMeta, topic: str, partition: int, metrics: ProduceBatchMetrics
    ) -> None:
        self._add("produce_batch_written", meta=meta, topic=topic, partition=partition, metrics=metrics)

    def on_fetch_batch_read(self, meta: BrokerMeta, topic: str, partition: int, metrics: FetchBatchMetrics) -> None:
        self._add("fetch_batch_read", meta=meta, topic=topic, partition=partition, metrics=metrics)

    def on_produce_record_buffered(self, record: ProduceRecord) -> None:
        self._add("produce_record_buffered", record=record)

    def on_produce_record_unbuffered(self, record: ProduceRecord, err: BaseException | None) -> None:
        self._add("produce_record_unbuffered", record=record, err=err)

    def on_fetch_record_buffered(self, record: Any) -> None:
        self._add("fetch_record_buffered", record=record)

    def on_fetch_record_unbuffered(self, record: Any, polled: bool) -> None:
        self._add("fetch_record_unbuffered", record=record, polled=polled)

    def inject_batch_headers(self, topic: str, partition: int, headers: Sequence[tuple[str, bytes]]) -> None:
        """Records the call and adds nothing."""
        self._add("inject_batch_headers", topic=topic, partition=partition, headers=list(headers))

    def inject_record_headers(self, topic: str, partition: int, headers: Sequence[tuple[str, bytes]]) -> None:
        """Records the call and adds nothing."""
        self._add("inject_record_headers", topic=topic, partition=partition, headers=list(headers))

    def on_records_polled(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        self._add("records_polled", topic=topic, partition=partition, records=list(records))

    def on_offsets_committed(self, group: str, topic: str, partition: int, offset: int) -> None:
        self._add("offsets_committed", group=group, topic=topic, partition=partition, offset=offset)

    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        """One ``request_finished`` event per request (on the export worker: after
        ``kafkahooks.export.flush()``), with its ``key`` and the :class:`Request` as ``request``."""
        for r in requests:
            self._add("request_finished", key=r.key, request=r)

    def on_connection_events(self, events: Sequence[ConnectionEvent]) -> None:
        """One ``connection_event`` per event (on the export worker), with its ``kind`` and the
        :class:`ConnectionEvent` as ``connection_event``."""
        for e in events:
            self._add("connection_event", kind=e.kind, connection_event=e)

    def on_fetch_batch_entered(self, topic: str, partition: int, info: BatchInfo, scoped: bool) -> int:
        """Records the call; the token is the batch's base offset."""
        self._add("fetch_batch_entered", topic=topic, partition=partition, info=info, scoped=scoped)
        return info.base_offset

    def on_poll_ended(self, tokens: Sequence[Any]) -> None:
        self._add("poll_ended", tokens=list(tokens))

    def on_batches_handed_out(self, handouts: Sequence[HandOut]) -> None:
        """One ``batch_handed_out`` per batch (on the export worker), with ``topic``,
        ``partition``, ``handed``, ``token`` (this hook's) and the :class:`HandOut` as ``handout``."""
        for h in handouts:
            self._add(
                "batch_handed_out",
                topic=h.topic,
                partition=h.partition,
                handed=h.handed,
                token=h.token(self),
                handout=h,
            )


__all__ = ["HookEvent", "RecordingHook"]
