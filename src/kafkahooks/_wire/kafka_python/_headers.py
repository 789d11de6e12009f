"""kafka-python producer batches: the injectors' headers on each new batch's first record (and on
every record, for record injectors), and a resend without them when a broker refuses them."""

from __future__ import annotations

from typing import Any

import kafka
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kafkahooks._guard import internal_error
from kafkahooks._log import get_logger
from kafkahooks._wire._rejected import INJECTED_ATTR, HeaderGate, refuses_headers, without_injected
from kafkahooks._wire._shared import with_batch_headers, with_record_headers
from kafkahooks.hooks._dispatch import HookDispatcher

_logger = get_logger("kafkahooks._wire.kafka_python")
_RECORD_CODEC = (DefaultRecordBatch, DefaultRecordBatchBuilder)
"""The client's own v2 batch reader and builder (to resend a refused batch without our headers)."""


class HeadersRefused(kafka.errors.RetriableError):  # type: ignore[misc]
    """A batch was refused for the record headers kafkahooks added; it is resent without them."""


def install_batch_headers(producer: Any, dispatch: HookDispatcher) -> None:
    """Let ``dispatch``'s injectors add headers to the first record of each new producer batch
    (and its record injectors to every record, before that).

    kafka-python builds a batch and appends its first record inside one ``RecordAccumulator.append``
    call, so this producer's accumulator gets a per-instance ``append`` that first tries the open
    batch (``abort_on_new_batch=True``, KIP-480's own probe) and only when the record would open a
    new batch asks the injectors, on the caller's thread, and appends with the extra headers.

    A batch that carries such headers is marked; if the broker refuses it for them (see
    :mod:`kafkahooks._wire._rejected`), the sender's error path rebuilds it without them and
    retries it through kafka-python's own retry logic, and this producer injects no more.
    """
    accumulator = producer._accumulator
    if accumulator.config.get("message_version", 2) < 2:
        # Brokers before 0.11 take no record headers: never inject (kafka-python would refuse the send).
        _logger.warning("batch_headers_disabled", reason="broker older than 0.11 (message format < v2)")
        return
    original = accumulator.append
    gate = HeaderGate()
    record_headers = dispatch.has_record_header_injectors
    batch_headers = dispatch.has_batch_header_injectors

    def append(
        tp: Any,
        timestamp_ms: Any,
        key: Any,
        value: Any,
        headers: Any,
        now: Any = None,
        abort_on_new_batch: bool = False,
    ) -> Any:
        if record_headers and gate.open:
            try:
                headers = with_record_headers(dispatch, tp.topic, tp.partition, headers)
            except Exception as exc:
                internal_error("kafka_python.record_headers", exc)
        if not batch_headers:
            return original(tp, timestamp_ms, key, value, headers, now=now, abort_on_new_batch=abort_on_new_batch)
        result = original(tp, timestamp_ms, key, value, headers, now=now, abort_on_new_batch=True)
        if not result[3] or abort_on_new_batch:
            return result
        injected: tuple[str, ...] = ()
        if gate.open:
            try:
                headers, injected, timestamp_ms = with_batch_headers(
                    dispatch, tp.topic, tp.partition, headers, timestamp_ms
                )
            except Exception as exc:
                internal_error("kafka_python.append", exc)
        result = original(tp, timestamp_ms, key, value, headers, now=now, abort_on_new_batch=False)
        if injected:
            _mark_injected(accumulator, tp, result[0], injected)
        return result

    accumulator.append = append
    _install_refusal_retry(producer._sender, gate)


def _mark_injected(accumulator: Any, tp: Any, future: Any, keys: tuple[str, ...]) -> None:
    """Label the batch ``future`` belongs to with the header keys kafkahooks appended."""
    try:
        produce_future = future._produce_future
        with accumulator._tp_lock(tp):
            for batch in reversed(accumulator._batches.get(tp, ())):
                if batch.produce_future is produce_future:
                    setattr(batch, INJECTED_ATTR, keys)
                    return
    except Exception as exc:
        internal_error("kafka_python.mark_injected", exc)


def _install_refusal_retry(sender: Any, gate: HeaderGate) -> None:
    original = sender._dispatch_error

    def _dispatch_error(batch: Any, exception: Any, partition_response: Any) -> Any:
        try:
            injected = getattr(batch, INJECTED_ATTR, None)
            if injected and refuses_headers(exception):
                delattr(batch, INJECTED_ATTR)
                gate.refused(exception)
                if sender._can_retry(batch, HeadersRefused):
                    rebuilt = without_injected(batch.records.buffer(), injected, *_RECORD_CODEC)
                    if rebuilt is not None:
                        batch.records._buffer = rebuilt
                        exception = HeadersRefused(f"{type(exception).__name__}: resending without kafkahooks' headers")
        except Exception as exc:
            internal_error("kafka_python.dispatch_error", exc)
        return original(batch, exception, partition_response)

    sender._dispatch_error = _dispatch_error
