"""The wrapped kafka-python clients: kafka-python's own API, with what :mod:`kafkahooks._wrapped` shares."""

from __future__ import annotations

from typing import Any

import kafka

from kafkahooks._instrument import Instrumentation, strip_options
from kafkahooks._wire.kafka_python import ADAPTER
from kafkahooks._wrapped import WrappedConsumer, WrappedProducer


class KafkaProducer(WrappedProducer, kafka.KafkaProducer):  # type: ignore[misc]
    """``kafka.KafkaProducer`` with broker hooks and hook-level tracing (see the module docs)."""

    _kh_adapter = ADAPTER

    def __init__(self, **configs: Any) -> None:
        self._kh = Instrumentation.from_kwargs("producer", configs, self._kh_adapter)
        self._kh_prepare(configs)
        super().__init__(**configs)
        if self._kh_wants_send():
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
        record, headers = self._kh_buffered("kafka_python.send", topic, key, value, headers, partition, timestamp_ms)
        future = super().send(
            topic, value=value, key=key, headers=headers, partition=partition, timestamp_ms=timestamp_ms
        )
        if record is not None and self._kh_wants_settled():
            rec = record

            def done(result: Any) -> None:  # kafka-python passes the metadata or the exception
                failed = isinstance(result, BaseException)
                self._kh_settled(rec, result if failed else None, None if failed else result)

            future.add_both(done)
        self._kh_raise_pending()
        return future

    def flush(self, *args: Any, **kwargs: Any) -> None:
        super().flush(*args, **kwargs)
        if not self._kh.dispatch.closing:  # close() raises once, at its end
            self._kh_raise_pending()

    def close(self, *args: Any, **kwargs: Any) -> None:
        if not hasattr(self, "config"):  # construction failed: kafka-python's __del__ is closing a husk
            return
        self._kh_closing()
        try:
            super().close(*args, **kwargs)
        finally:
            self._kh_closed()
        if not kwargs.get("null_logger"):  # not from __del__
            self._kh_raise_pending()


class KafkaConsumer(WrappedConsumer, kafka.KafkaConsumer):  # type: ignore[misc]
    """``kafka.KafkaConsumer`` with broker hooks and hook-level tracing (see the module docs)."""

    def __new__(cls, *topics: str, **configs: Any) -> KafkaConsumer:
        # Iteration goes through type slots: the class is chosen here, at construction. Iteration
        # draws from poll(), which reports on_records_polled, so poll hooks need only the scope.
        kh = Instrumentation.from_kwargs("consumer", dict(configs), ADAPTER)
        chosen = cls
        if cls is KafkaConsumer:
            chosen = cls._kh_choose(kh, cls, _PolledKafkaConsumer, _RecordHookedKafkaConsumer, getone_polls=False)
        self: KafkaConsumer = super().__new__(chosen)
        self._kh = kh
        return self

    _kh_adapter = ADAPTER

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
        self._kh_raise_pending()


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
        # Records prefetched for iteration (update_offsets=False) are handed out by __next__.
        self._kh_polled(result, hand_out=update_offsets)
        return result


class _RecordHookedKafkaConsumer(_PolledKafkaConsumer):
    """With per-record user hooks (or ``strict_hooks``): iteration reports every record it hands
    out (and raises a hook's exception kept by strict mode)."""

    def __next__(self) -> Any:
        record = super().__next__()
        if self._kh.dispatch.has_fetch_record_hooks:
            self._kh_handed_out(record)
        self._kh_raise_pending()
        return record
