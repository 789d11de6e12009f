"""The wrapped aiokafka clients."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka

from kafkahooks._instrument import Instrumentation, WrappedClient, record_buffered, strip_options
from kafkahooks._wire import _aiokafka as wire


class AIOKafkaProducer(WrappedClient, aiokafka.AIOKafkaProducer):  # type: ignore[misc]
    """``aiokafka.AIOKafkaProducer`` with broker hooks and hook-level tracing (see the module docs)."""

    _kh_adapter = wire.ADAPTER

    def __init__(self, **kwargs: Any) -> None:
        self._kh = Instrumentation.from_kwargs("producer", kwargs, self._kh_adapter)
        self._kh_prepare(kwargs)
        super().__init__(**kwargs)
        if self._kh.dispatch.has_produce_record_hooks or self._kh.dispatch.strict:
            # Installed per instance, so a producer without record hooks pays nothing in send().
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
        dispatch = self._kh.dispatch
        record, headers = record_buffered(
            dispatch, "aiokafka.send", topic, key, value, headers, partition, timestamp_ms
        )
        future = await super().send(
            topic, value=value, key=key, partition=partition, timestamp_ms=timestamp_ms, headers=headers
        )
        if record is not None and dispatch.has_produce_unbuffered_hooks:
            rec = record

            def done(fut: Any) -> None:
                exc = asyncio.CancelledError() if fut.cancelled() else fut.exception()
                if exc is None:
                    meta = fut.result()
                    rec.offset = getattr(meta, "offset", -1)
                    rec.partition = getattr(meta, "partition", rec.partition)
                dispatch.produce_record_unbuffered(rec, exc)

            future.add_done_callback(done)
        if dispatch.strict:
            dispatch.raise_pending()
        return future

    async def flush(self) -> None:
        await super().flush()
        if self._kh.dispatch.strict and not self._kh.dispatch.closing:  # stop() raises once, at its end
            self._kh.dispatch.raise_pending()

    async def stop(self) -> None:
        self._kh_closing()
        try:
            await super().stop()
        finally:
            await self._kh_aclosed()
        if self._kh.dispatch.strict:
            self._kh.dispatch.raise_pending()


class AIOKafkaConsumer(WrappedClient, aiokafka.AIOKafkaConsumer):  # type: ignore[misc]
    """``aiokafka.AIOKafkaConsumer`` with broker hooks and hook-level tracing (see the module docs)."""

    def __new__(cls, *topics: str, **kwargs: Any) -> AIOKafkaConsumer:
        # ``async for`` goes through type slots, so the consume-side hooks pick the class here, at
        # construction: per-record user hooks need getone/getmany overrides, kafkahooks' own
        # plugins (hand-outs per record batch) a getmany() scope, and a consumer without either
        # keeps aiokafka's own. (Reassigning __class__ later would slow every attribute read on
        # the consumer, which aiokafka does for every record.)
        kh = Instrumentation.from_kwargs("consumer", dict(kwargs), wire.ADAPTER)
        chosen = cls
        if cls is AIOKafkaConsumer:
            if kh.dispatch.has_fetch_record_hooks or kh.dispatch.has_poll_hooks or kh.dispatch.strict:
                chosen = _InstrumentedAIOKafkaConsumer
            elif kh.dispatch.handouts is not None:
                chosen = _ScopedAIOKafkaConsumer
        self: AIOKafkaConsumer = super().__new__(chosen)
        self._kh = kh
        return self

    _kh_adapter = wire.ADAPTER

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
        if self._kh.dispatch.strict:
            self._kh.dispatch.raise_pending()


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

    def _kh_handed_out(self, record: Any) -> None:
        dispatch = self._kh.dispatch
        dispatch.fetch_record_buffered(record)
        dispatch.fetch_record_unbuffered(record, True)

    async def getone(self, *partitions: Any) -> Any:
        record = await super().getone(*partitions)
        dispatch = self._kh.dispatch
        if dispatch.has_poll_hooks:
            dispatch.records_polled(record.topic, record.partition, (record,))
        if dispatch.has_fetch_record_hooks:
            self._kh_handed_out(record)
        if dispatch.strict:
            dispatch.raise_pending()
        return record

    async def getmany(self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        result = await super().getmany(*partitions, timeout_ms=timeout_ms, max_records=max_records)
        dispatch = self._kh.dispatch
        if result and dispatch.has_poll_hooks:
            for tp, records in result.items():
                dispatch.records_polled(tp.topic, tp.partition, records)
        if dispatch.has_fetch_record_hooks:
            for records in result.values():
                for record in records:
                    self._kh_handed_out(record)
        if dispatch.strict:
            dispatch.raise_pending()
        return result
