"""The wrapped aiokafka clients: aiokafka's own API, with what :mod:`kafkahooks._wrapped` shares."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka

from kafkahooks._instrument import Instrumentation, strip_options
from kafkahooks._wire.aiokafka import ADAPTER
from kafkahooks._wrapped import WrappedConsumer, WrappedProducer


class AIOKafkaProducer(WrappedProducer, aiokafka.AIOKafkaProducer):  # type: ignore[misc]
    """``aiokafka.AIOKafkaProducer`` with broker hooks and hook-level tracing (see the module docs)."""

    _kh_adapter = ADAPTER

    def __init__(self, **kwargs: Any) -> None:
        self._kh = Instrumentation.from_kwargs("producer", kwargs, self._kh_adapter)
        self._kh_prepare(kwargs)
        super().__init__(**kwargs)
        if self._kh_wants_send():
            self.send = self._kh_send
        self._kh_install()

    async def _kh_send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: Any = None,
        timestamp_ms: Any = None,
        headers: Any = None,
    ) -> Any:
        record, headers = self._kh_buffered("aiokafka.send", topic, key, value, headers, partition, timestamp_ms)
        future = await super().send(
            topic, value=value, key=key, partition=partition, timestamp_ms=timestamp_ms, headers=headers
        )
        if record is not None and self._kh_wants_settled():
            rec = record

            def done(fut: Any) -> None:
                exc = asyncio.CancelledError() if fut.cancelled() else fut.exception()
                self._kh_settled(rec, exc, fut.result() if exc is None else None)

            future.add_done_callback(done)
        self._kh_raise_pending()
        return future

    async def flush(self) -> None:
        await super().flush()
        if not self._kh.dispatch.closing:  # stop() raises once, at its end
            self._kh_raise_pending()

    async def stop(self) -> None:
        self._kh_closing()
        try:
            await super().stop()
        finally:
            await self._kh_aclosed()
        self._kh_raise_pending()


class AIOKafkaConsumer(WrappedConsumer, aiokafka.AIOKafkaConsumer):  # type: ignore[misc]
    """``aiokafka.AIOKafkaConsumer`` with broker hooks and hook-level tracing (see the module docs)."""

    def __new__(cls, *topics: str, **kwargs: Any) -> AIOKafkaConsumer:
        # ``async for`` goes through type slots: the class is chosen here, at construction. getone
        # reports on_records_polled itself, so poll hooks need the hooked class.
        kh = Instrumentation.from_kwargs("consumer", dict(kwargs), ADAPTER)
        chosen = cls
        if cls is AIOKafkaConsumer:
            chosen = cls._kh_choose(kh, cls, _ScopedAIOKafkaConsumer, _InstrumentedAIOKafkaConsumer, getone_polls=True)
        self: AIOKafkaConsumer = super().__new__(chosen)
        self._kh = kh
        return self

    _kh_adapter = ADAPTER

    def __init__(self, *topics: str, **kwargs: Any) -> None:
        strip_options(kwargs)
        self._kh_prepare(kwargs)
        super().__init__(*topics, **kwargs)
        self._kh_install()

    async def start(self) -> None:
        await super().start()
        self._kh_consumer_started()  # aiokafka builds its fetcher in start()

    async def stop(self) -> None:
        self._kh_closing()
        try:
            await super().stop()
        finally:
            self._kh_consumer_closed()
            await self._kh_aclosed()
        self._kh_raise_pending()


class _ScopedAIOKafkaConsumer(AIOKafkaConsumer):
    """A consumer whose getmany() hands the fused plugins its batches as one call (fan-in)."""

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        scope = self._kh.begin_handout_scope()
        try:
            return await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        finally:
            self._kh.end_handout_scope(scope)


class _InstrumentedAIOKafkaConsumer(_ScopedAIOKafkaConsumer):
    """A consumer with user consume-side hooks (or ``strict_hooks``): records handed out are
    reported per partition list (``on_records_polled``; per record for ``getone``) and, with
    per-record hooks, one by one. ``async for`` uses getone."""

    async def getone(self, *partitions: Any) -> Any:
        record = await super().getone(*partitions)
        dispatch = self._kh.dispatch
        if dispatch.has_poll_hooks:
            dispatch.records_polled(record.topic, record.partition, (record,))
        if dispatch.has_fetch_record_hooks:
            self._kh_handed_out(record)
        self._kh_raise_pending()
        return record

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        result = await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        self._kh_polled(result)
        return result
