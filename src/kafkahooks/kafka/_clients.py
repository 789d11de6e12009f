"""The wrapped kafka-python clients."""

from __future__ import annotations

from typing import Any

import kafka

from kafkahooks._instrument import Instrumentation, WrappedClient, record_buffered, strip_options
from kafkahooks._wire import _kafka_python as wire


class KafkaProducer(WrappedClient, kafka.KafkaProducer):  # type: ignore[misc]
    """``kafka.KafkaProducer`` with broker hooks and hook-level tracing (see the module docs)."""

    _kh_adapter = wire.ADAPTER

    def __init__(self, **configs: Any) -> None:
        self._kh = Instrumentation.from_kwargs("producer", configs, self._kh_adapter)
        self._kh_prepare(configs)
        super().__init__(**configs)
        if self._kh.dispatch.has_produce_record_hooks or self._kh.dispatch.strict:
            # Installed per instance, so a producer without record hooks pays nothing in send().
            self.send = self._kh_send
        self._kh_install()

    def _kh_send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Any = None,
        partition: Any = None,
        timestamp_ms: Any = None,
    ) -> Any:
        dispatch = self._kh.dispatch
        record, headers = record_buffered(
            dispatch, "kafka_python.send", topic, key, value, headers, partition, timestamp_ms
        )
        future = super().send(
            topic, value=value, key=key, headers=headers, partition=partition, timestamp_ms=timestamp_ms
        )
        if record is not None and dispatch.has_produce_unbuffered_hooks:
            rec = record

            def done(result: Any) -> None:
                if isinstance(result, BaseException):
                    dispatch.produce_record_unbuffered(rec, result)
                else:
                    rec.offset = getattr(result, "offset", -1)
                    rec.partition = getattr(result, "partition", rec.partition)
                    dispatch.produce_record_unbuffered(rec, None)

            future.add_both(done)
        if dispatch.strict:
            dispatch.raise_pending()
        return future

    def flush(self, *args: Any, **kwargs: Any) -> None:
        super().flush(*args, **kwargs)
        if self._kh.dispatch.strict and not self._kh.dispatch.closing:  # close() raises once, at its end
            self._kh.dispatch.raise_pending()

    def close(self, *args: Any, **kwargs: Any) -> None:
        if not hasattr(self, "config"):  # construction failed: kafka-python's __del__ is closing a husk
            return
        self._kh_closing()
        try:
            super().close(*args, **kwargs)
        finally:
            self._kh_closed()
        if self._kh.dispatch.strict and not kwargs.get("null_logger"):  # not from __del__
            self._kh.dispatch.raise_pending()


class KafkaConsumer(WrappedClient, kafka.KafkaConsumer):  # type: ignore[misc]
    """``kafka.KafkaConsumer`` with broker hooks and hook-level tracing (see the module docs)."""

    def __new__(cls, *topics: str, **configs: Any) -> KafkaConsumer:
        # Iteration goes through type slots, so the consume-side hooks pick the class here, at
        # construction: per-record user hooks need __next__, poll hooks and kafkahooks' own plugins
        # (hand-outs per record batch) a poll() override, and a consumer without either keeps
        # kafka-python's own. (Reassigning __class__ later would slow every attribute read on the
        # consumer, which kafka-python does for every record.)
        kh = Instrumentation.from_kwargs("consumer", dict(configs), wire.ADAPTER)
        chosen = cls
        if cls is KafkaConsumer:
            if kh.dispatch.has_fetch_record_hooks or kh.dispatch.strict:
                chosen = _RecordHookedKafkaConsumer
            elif kh.dispatch.has_poll_hooks or kh.dispatch.handouts is not None:
                chosen = _PolledKafkaConsumer
        self: KafkaConsumer = super().__new__(chosen)
        self._kh = kh
        return self

    _kh_adapter = wire.ADAPTER

    def __init__(self, *topics: str, **configs: Any) -> None:
        strip_options(configs)
        self._kh_prepare(configs)
        super().__init__(*topics, **configs)
        self._kh_consumer_started()  # kafka-python's consumer fetches from construction on
        self._kh_install()

    def close(self, *args: Any, **kwargs: Any) -> None:
        if not hasattr(self, "config"):  # construction failed: kafka-python's __del__ is closing a husk
            return
        self._kh_closing()
        try:
            super().close(*args, **kwargs)
        finally:
            self._kh_consumer_closed()
            self._kh_closed()
        if self._kh.dispatch.strict:
            self._kh.dispatch.raise_pending()


class _PolledKafkaConsumer(KafkaConsumer):
    """A consumer whose poll() reports to consume-side hooks: the fused plugins see the call's
    batches as one (fan-in); user ``on_records_polled`` hooks get each partition list, including
    the lists iteration draws from (prefetched with ``update_offsets=False``)."""

    def poll(self, timeout_ms: int = 0, max_records: int | None = None, update_offsets: bool = True) -> Any:
        scope = self._kh.begin_handout_scope()
        try:
            result = super().poll(timeout_ms=timeout_ms, max_records=max_records, update_offsets=update_offsets)
        finally:
            self._kh.end_handout_scope(scope)
        dispatch = self._kh.dispatch
        if result and dispatch.has_poll_hooks:
            for tp, records in result.items():
                dispatch.records_polled(tp.topic, tp.partition, records)
        if update_offsets and dispatch.has_fetch_record_hooks:
            for records in result.values():
                for record in records:
                    self._kh_handed_out(record)
        if dispatch.strict:
            dispatch.raise_pending()
        return result

    def _kh_handed_out(self, record: Any) -> None:
        dispatch = self._kh.dispatch
        dispatch.fetch_record_buffered(record)
        dispatch.fetch_record_unbuffered(record, True)


class _RecordHookedKafkaConsumer(_PolledKafkaConsumer):
    """With per-record user hooks (or ``strict_hooks``): iteration reports every record it hands
    out (and raises a hook's exception kept by strict mode)."""

    def __next__(self) -> Any:
        record = super().__next__()
        dispatch = self._kh.dispatch
        if dispatch.has_fetch_record_hooks:
            self._kh_handed_out(record)
        if dispatch.strict:
            dispatch.raise_pending()
        return record
