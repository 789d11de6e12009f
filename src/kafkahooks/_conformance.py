"""Type-level conformance, for mypy only (never imported): every hook implementation kafkahooks
ships satisfies the protocols of the events it implements, signatures included, in the style of
kotel's ``var _ kgo.HookBrokerWrite = new(Tracer)``. A signature that drifts fails ``mypy``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kafkahooks._wire._adapter import WireAdapter
    from kafkahooks._wire.aiokafka import AiokafkaAdapter
    from kafkahooks._wire.kafka_python import KafkaPythonAdapter
    from kafkahooks.datastreams._hooks import DataStreamHooks, RecordHeaderDataStreamHooks
    from kafkahooks.hooks import (
        BatchesHandedOutHook,
        BrokerConnectHook,
        BrokerDisconnectHook,
        BrokerE2EHook,
        BrokerReadHook,
        BrokerThrottleHook,
        BrokerWriteHook,
        ClientClosedHook,
        ConnectionEventsHook,
        FetchBatchEnteredHook,
        FetchBatchReadHook,
        FetchRecordBufferedHook,
        FetchRecordUnbufferedHook,
        NewClientHook,
        OffsetsCommittedHook,
        PollEndedHook,
        ProduceBatchHeadersHook,
        ProduceBatchWrittenHook,
        ProduceRecordBufferedHook,
        ProduceRecordHeadersHook,
        ProduceRecordUnbufferedHook,
        RecordsPolledHook,
        RequestsFinishedHook,
    )
    from kafkahooks.latency import FlightRecorder
    from kafkahooks.logs import LogHooks
    from kafkahooks.metrics import MetricsHooks
    from kafkahooks.testing import RecordingHook
    from kafkahooks.tracing import BrokerSpans, RecordSpans

    def _recording_hook(hook: RecordingHook) -> None:
        _new_client: NewClientHook = hook
        _client_closed: ClientClosedHook = hook
        _connect: BrokerConnectHook = hook
        _disconnect: BrokerDisconnectHook = hook
        _write: BrokerWriteHook = hook
        _read: BrokerReadHook = hook
        _e2e: BrokerE2EHook = hook
        _throttle: BrokerThrottleHook = hook
        _produce_batch: ProduceBatchWrittenHook = hook
        _fetch_batch: FetchBatchReadHook = hook
        _produce_buffered: ProduceRecordBufferedHook = hook
        _produce_unbuffered: ProduceRecordUnbufferedHook = hook
        _fetch_buffered: FetchRecordBufferedHook = hook
        _fetch_unbuffered: FetchRecordUnbufferedHook = hook
        _batch_headers: ProduceBatchHeadersHook = hook
        _record_headers: ProduceRecordHeadersHook = hook
        _polled: RecordsPolledHook = hook
        _committed: OffsetsCommittedHook = hook
        _finished: RequestsFinishedHook = hook
        _connection_events: ConnectionEventsHook = hook
        _batch_entered: FetchBatchEnteredHook = hook
        _poll_ended: PollEndedHook = hook
        _handed_out: BatchesHandedOutHook = hook

    def _plugins(
        logs: LogHooks,
        records: RecordSpans,
        spans: BrokerSpans,
        streams: DataStreamHooks,
        record_streams: RecordHeaderDataStreamHooks,
        metrics: MetricsHooks,
        recorder: FlightRecorder,
    ) -> None:
        # kafkahooks' own plugins take the batched path as any hook can: through the public event.
        _spans_finished: RequestsFinishedHook = spans
        _streams_finished: RequestsFinishedHook = streams
        _metrics_finished: RequestsFinishedHook = metrics
        _recorder_finished: RequestsFinishedHook = recorder
        _metrics_events: ConnectionEventsHook = metrics
        _metrics_handed_out: BatchesHandedOutHook = metrics
        _spans_entered: FetchBatchEnteredHook = spans
        _streams_entered: FetchBatchEnteredHook = streams
        _streams_poll_ended: PollEndedHook = streams
        _streams_handed_out: BatchesHandedOutHook = streams
        _log_connect: BrokerConnectHook = logs
        _log_disconnect: BrokerDisconnectHook = logs
        _log_e2e: BrokerE2EHook = logs
        _log_throttle: BrokerThrottleHook = logs
        _records_buffered: ProduceRecordBufferedHook = records
        _records_unbuffered: ProduceRecordUnbufferedHook = records
        _records_fetched: FetchRecordUnbufferedHook = records
        _span_headers: ProduceBatchHeadersHook = spans
        _stream_headers: ProduceBatchHeadersHook = streams
        _stream_record_headers: ProduceRecordHeadersHook = record_streams

    def _adapters(aiokafka: AiokafkaAdapter, kafka_python: KafkaPythonAdapter) -> None:
        _aiokafka: WireAdapter = aiokafka
        _kafka_python: WireAdapter = kafka_python
