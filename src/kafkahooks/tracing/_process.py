"""Continue a trace while processing consumed records: ``process_span``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import Link, Span, SpanContext, SpanKind

from kafkahooks._version import __version__
from kafkahooks.tracing._broker_spans import MAX_LINKS
from kafkahooks.tracing._carriers import record_baggage, record_context


def _flatten(records: Any) -> list[Any]:
    if isinstance(records, Mapping):
        return [r for batch in records.values() for r in batch]
    if isinstance(records, Iterable) and not hasattr(records, "topic"):
        return list(records)
    return [records]


def batch_contexts(records: Any) -> list[SpanContext]:
    """The distinct creation contexts of ``records`` (one record, a list, or a poll/getmany result):
    :func:`~kafkahooks.tracing.record_context` of each, which reads the table once per batch (or
    run of batches with equal headers) a partition's records come from, not once per record."""
    seen: dict[tuple[int, int], SpanContext] = {}
    for record in _flatten(records):
        ctx = record_context(record)
        if ctx is not None:
            seen.setdefault((ctx.trace_id, ctx.span_id), ctx)
    return list(seen.values())


class process_span:
    """A ``process {topic}`` CONSUMER span around processing code, made current, linked to the
    creation contexts of the records (``with`` in threads, ``with`` or ``async with`` in asyncio).

    ``records`` is a record, a list of records, or the dict ``poll()``/``getmany()`` return. The
    span is a child of the current context, or, with ``as_child=True`` and a single creation
    context, a child of that context (the parent/child style some backends prefer), with the
    baggage the first record carrying any brings (W3C ``baggage`` or Jaeger ``uberctx-*``, as the
    global propagator reads) made current for the block too. Links are
    capped at 128 (``kafkahooks.links_dropped`` counts the rest). An exception escaping the block
    sets ``error.type`` and propagates.
    """

    def __init__(
        self,
        records: Any,
        *,
        group: str | None = None,
        as_child: bool = False,
        tracer_provider: Any = None,
        name: str | None = None,
    ) -> None:
        self._records = _flatten(records)
        self._group = group
        self._as_child = as_child
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer(
            "kafkahooks", __version__, schema_url=Schemas.V1_44_0.value
        )
        self._name = name
        self._token: object | None = None
        self._parent: Any = None
        self.span: Span | None = None

    def _start(self) -> Span:
        contexts = batch_contexts(self._records)
        topics = {getattr(r, "topic", None) for r in self._records}
        topic = next(iter(topics)) if len(topics) == 1 else None
        attributes: dict[str, Any] = {
            msg.MESSAGING_SYSTEM: "kafka",
            msg.MESSAGING_OPERATION_NAME: "process",
            msg.MESSAGING_OPERATION_TYPE: "process",
        }
        if topic:
            attributes[msg.MESSAGING_DESTINATION_NAME] = topic
        if len(self._records) != 1:
            attributes[msg.MESSAGING_BATCH_MESSAGE_COUNT] = len(self._records)
        else:
            attributes[msg.MESSAGING_KAFKA_OFFSET] = self._records[0].offset
            attributes[msg.MESSAGING_DESTINATION_PARTITION_ID] = str(self._records[0].partition)
        if self._group:
            attributes[msg.MESSAGING_CONSUMER_GROUP_NAME] = self._group
        if len(contexts) > MAX_LINKS:
            attributes["kafkahooks.links_dropped"] = len(contexts) - MAX_LINKS
        parent = None
        if self._as_child and len(contexts) == 1:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(contexts[0]))
            carried = next((found for r in self._records if (found := record_baggage(r))), None)
            for key, value in (carried or {}).items():
                parent = otel_baggage.set_baggage(key, value, context=parent)
        self._parent = parent
        name = self._name or (f"process {topic}" if topic else "process")
        return self._tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=[Link(c) for c in contexts[:MAX_LINKS]],
        )

    def __enter__(self) -> Span:
        self.span = self._start()
        self._token = otel_context.attach(trace.set_span_in_context(self.span, self._parent))
        return self.span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self.span
        if span is not None and exc is not None and isinstance(exc, Exception):
            span.set_attribute(error_attributes.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(trace.StatusCode.ERROR, str(exc)[:200])
        if self._token is not None:
            with contextlib.suppress(Exception):
                otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        if span is not None:
            span.end()

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)
