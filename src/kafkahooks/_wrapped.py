"""What the wrapped clients of every library share: their install sequence, their lifecycle, and the
templates of a hooked ``send()`` and a reporting ``poll()``/``getmany()``.

A library's wrapped classes (``kafkahooks/aiokafka/_clients.py``, ``kafkahooks/kafka/_clients.py``)
keep only what its API spells differently: ``async`` or not, the shape of a send future, the names
of the consume calls. Every private attribute of a library is read behind its adapter
(:class:`~kafkahooks._wire._adapter.WireAdapter`), which gets the instrumentation's
:class:`~kafkahooks._wire._adapter.Wiring` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from kafkahooks._guard import internal_error
from kafkahooks._identity import ClientIdentity
from kafkahooks._instrument import Instrumentation, moved_internals
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._types import ProduceRecord

if TYPE_CHECKING:
    from kafkahooks._wire._adapter import WireAdapter


def record_buffered(
    dispatch: HookDispatcher,
    where: str,
    topic: str,
    key: Any,
    value: Any,
    headers: Any,
    partition: Any,
    timestamp_ms: Any,
) -> tuple[ProduceRecord | None, Any]:
    """Fire ``on_produce_record_buffered`` for a ``send()``: the record the hooks saw (None if that
    failed) and the headers to send. The application's own ``headers`` object goes to the client
    unless a hook changed the headers, and then in the same container type it had (a list, or a
    tuple) so the client accepts or refuses exactly what it would have without kafkahooks."""
    try:
        record = ProduceRecord(topic, key, value, list(headers) if headers else [], partition, timestamp_ms)
        dispatch.produce_record_buffered(record)
        if headers is None or isinstance(headers, list):  # the common case: compare, no copy
            return record, record.headers if record.headers != (headers or []) else headers
        if isinstance(headers, tuple) and record.headers != list(headers):
            return record, tuple(record.headers)
        return record, headers
    except Exception as exc:
        internal_error(where, exc)
        return None, headers


class WrappedClient:
    """What every wrapped client adds to the client library's class."""

    _kh: Instrumentation
    _kh_adapter: ClassVar[WireAdapter]
    """The client library's adapter: every private attribute of the library is read behind it."""

    def _kh_prepare(self, configs: dict[str, Any]) -> None:
        """Before the library builds the client: the adapter adjusts its configuration, unless
        the library moved what the adapter relies on (:func:`moved_internals`)."""
        if not moved_internals(self._kh_adapter):
            self._kh_adapter.prepare(self._kh.wiring, configs)

    def _kh_install(self) -> None:
        """The install sequence every wrapped client runs once its library has built it: the
        adapter hooks what the instrumentation needs (nothing if the library moved what it relies
        on), then the client counts as opened."""
        client_id = None
        if not moved_internals(self._kh_adapter):
            try:
                client_id = self._kh_adapter.install(self, self._kh.wiring)
            except Exception as exc:
                internal_error(f"{self._kh_adapter.library}.install", exc)
        self._kh.opened(self, client_id)

    def _kh_consumer_started(self) -> None:
        """A consumer can fetch: its hand-outs go to the fused plugins (when any wants them)."""
        tracker = self._kh.dispatch.handouts
        if tracker is not None and not moved_internals(self._kh_adapter):
            try:
                self._kh_adapter.consumer_started(self, tracker)
            except Exception as exc:
                internal_error(f"{self._kh_adapter.library}.consumer_started", exc)

    def _kh_consumer_closed(self) -> None:
        if self._kh.dispatch.handouts is not None and not moved_internals(self._kh_adapter):
            try:
                self._kh_adapter.consumer_closed(self)
            except Exception as exc:
                internal_error(f"{self._kh_adapter.library}.consumer_closed", exc)

    def _kh_raise_pending(self) -> None:
        """Strict mode: raise a hook's kept exception at the end of the application's call."""
        dispatch = self._kh.dispatch
        if dispatch.strict:
            dispatch.raise_pending()

    @property
    def hook_dispatcher(self) -> HookDispatcher:
        """This client's :class:`~kafkahooks.hooks.HookDispatcher` (failure counts live there)."""
        return self._kh.dispatch

    @property
    def kafkahooks_identity(self) -> ClientIdentity:
        """Role, client id, group and bootstrap servers, as kafkahooks' plugins name this client."""
        return self._kh.identity

    def _kh_closing(self) -> None:
        """The client starts closing: requests its own close cuts short are not failures."""
        kh = getattr(self, "_kh", None)
        if kh is not None:
            kh.dispatch.closing = True

    def _kh_closed(self) -> None:
        """Report the close once; tolerant of a client whose construction failed (``__del__`` closes it)."""
        kh = getattr(self, "_kh", None)
        if kh is not None:
            kh.closed(self)

    async def _kh_aclosed(self) -> None:
        """:meth:`_kh_closed` for an event loop: the bounded waits (a hung hook or exporter can
        take them to their limit) run on a thread of their own, so other tasks keep running and
        the loop's default executor (which ``getaddrinfo`` needs) stays free. Cancelling the
        awaiting task cancels only the wait."""
        kh = getattr(self, "_kh", None)
        if kh is None or not kh.seal(self):
            return
        loop = asyncio.get_running_loop()
        waiting = loop.create_future()

        def finish() -> None:
            if not waiting.done():
                waiting.set_result(None)

        def drain() -> None:
            try:
                kh.drain()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                    loop.call_soon_threadsafe(finish)

        threading.Thread(target=drain, name="kafkahooks-close", daemon=True).start()
        await waiting


class WrappedProducer(WrappedClient):
    """What a wrapped producer adds: the per-record hooks around ``send()``."""

    def _kh_wants_send(self) -> bool:
        """Whether ``send()`` must be the hooked one (installed per instance, so a producer without
        record hooks pays nothing per record)."""
        dispatch = self._kh.dispatch
        return dispatch.has_produce_record_hooks or dispatch.strict

    def _kh_buffered(
        self, where: str, topic: str, key: Any, value: Any, headers: Any, partition: Any, timestamp_ms: Any
    ) -> tuple[ProduceRecord | None, Any]:
        """``send()`` was called: :func:`record_buffered` on this producer's dispatcher."""
        return record_buffered(self._kh.dispatch, where, topic, key, value, headers, partition, timestamp_ms)

    def _kh_wants_settled(self) -> bool:
        """Whether a send's future needs a callback for ``on_produce_record_unbuffered``."""
        return self._kh.dispatch.has_produce_unbuffered_hooks

    def _kh_settled(self, record: ProduceRecord, exc: BaseException | None, metadata: Any) -> None:
        """The record's send finished: with its metadata (offset, partition) or ``exc``."""
        if exc is None:
            record.offset = getattr(metadata, "offset", -1)
            record.partition = getattr(metadata, "partition", record.partition)
        self._kh.dispatch.produce_record_unbuffered(record, exc)


class WrappedConsumer(WrappedClient):
    """What a wrapped consumer adds: the class that fits its hooks, and what a consume call reports."""

    @staticmethod
    def _kh_choose(kh: Instrumentation, plain: type, scoped: type, hooked: type, getone_polls: bool) -> type:
        """The consumer class for ``kh``'s hooks, chosen at construction (iteration goes through
        type slots; reassigning ``__class__`` later would slow every attribute read on the consumer,
        which the library does for every record): ``hooked`` for per-record hooks (and
        ``on_records_polled`` when the library's single-record call must report it,
        ``getone_polls``) or strict mode; ``scoped`` for poll hooks or kafkahooks' own hand-outs;
        else the library's own."""
        dispatch = kh.dispatch
        if dispatch.has_fetch_record_hooks or dispatch.strict or (getone_polls and dispatch.has_poll_hooks):
            return hooked
        if dispatch.has_poll_hooks or dispatch.handouts is not None:
            return scoped
        return plain

    def _kh_handed_out(self, record: Any) -> None:
        dispatch = self._kh.dispatch
        dispatch.fetch_record_buffered(record)
        dispatch.fetch_record_unbuffered(record, True)

    def _kh_polled(self, result: Any, hand_out: bool = True) -> None:
        """A consume call returned ``result`` (``{partition: [records]}``): ``on_records_polled`` per
        partition list, then, with ``hand_out``, the per-record hooks; strict mode raises last."""
        dispatch = self._kh.dispatch
        if result and dispatch.has_poll_hooks:
            for tp, records in result.items():
                dispatch.records_polled(tp.topic, tp.partition, records)
        if hand_out and dispatch.has_fetch_record_hooks:
            for records in result.values():
                for record in records:
                    self._kh_handed_out(record)
        if dispatch.strict:
            dispatch.raise_pending()
