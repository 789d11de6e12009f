"""``tracing="records"``: classic per-record spans, for comparison with hook-level tracing.

What per-record instrumentations do (kotel, opentelemetry-instrumentation-kafka-python): a
``send {topic}`` PRODUCER span per record, from ``send()`` until its acknowledgement, whose
context goes into that record's headers; a ``poll {topic}`` CLIENT span per record handed to the
application, linked to the record's creation context. Built on the per-record hooks, with the SDK
called on the caller's thread, so the benchmark can show the difference honestly.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import Link, SpanKind

from kafkahooks._identity import ClientIdentity
from kafkahooks._version import __version__
from kafkahooks.hooks import ProduceRecord
from kafkahooks.tracing._carriers import Carriers, carriers


class RecordSpans:
    """Per-record spans and per-record trace context (see the module docs)."""

    kafkahooks_kind = "spans:records"
    """Passed in ``hooks=``, an instance replaces the plugin of this kind a tracing mode installs."""
    kafkahooks_inline = True
    """Reads and sets the caller's context, so it must run inline: called directly, never offloaded."""

    def __init__(
        self, role: str, *, tracer_provider: Any = None, identity: ClientIdentity | None = None, propagator: Any = None
    ) -> None:
        self.role = role
        self.carriers: Carriers = carriers(propagator)
        """The trace-context formats written on each record and read from consumed ones."""
        self.identity = identity or ClientIdentity()
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(
            "kafkahooks", __version__, schema_url=Schemas.V1_44_0.value
        )

    def on_produce_record_buffered(self, record: ProduceRecord) -> None:
        span = self._tracer.start_span(
            f"send {record.topic}",
            kind=SpanKind.PRODUCER,
            attributes={
                msg.MESSAGING_SYSTEM: "kafka",
                msg.MESSAGING_OPERATION_NAME: "send",
                msg.MESSAGING_OPERATION_TYPE: "send",
                msg.MESSAGING_DESTINATION_NAME: record.topic,
            },
        )
        record.context = span
        if not self.carriers.set_by_application(record.headers):
            out = self.carriers.inject(trace.set_span_in_context(span))
            if out:
                record.headers.extend(out)

    def on_produce_record_unbuffered(self, record: ProduceRecord, err: BaseException | None) -> None:
        span = record.context
        if span is None:
            return
        if span.is_recording():
            span.set_attribute(msg.MESSAGING_DESTINATION_PARTITION_ID, str(record.partition))
            if err is None:
                span.set_attribute(msg.MESSAGING_KAFKA_OFFSET, record.offset)
            else:
                span.set_attribute(error_attributes.ERROR_TYPE, type(err).__qualname__)
                span.set_status(trace.StatusCode.ERROR, str(err)[:200])
        span.end()

    def on_fetch_record_unbuffered(self, record: Any, polled: bool) -> None:
        ctx = self.carriers.extract(getattr(record, "headers", None))
        attributes: dict[str, Any] = {
            msg.MESSAGING_SYSTEM: "kafka",
            msg.MESSAGING_OPERATION_NAME: "poll",
            msg.MESSAGING_OPERATION_TYPE: "receive",
            msg.MESSAGING_DESTINATION_NAME: record.topic,
            msg.MESSAGING_DESTINATION_PARTITION_ID: str(record.partition),
            msg.MESSAGING_KAFKA_OFFSET: record.offset,
        }
        if self.identity.group_id:
            attributes[msg.MESSAGING_CONSUMER_GROUP_NAME] = self.identity.group_id
        span = self._tracer.start_span(
            f"poll {record.topic}", kind=SpanKind.CLIENT, attributes=attributes, links=[Link(ctx)] if ctx else None
        )
        span.end()
