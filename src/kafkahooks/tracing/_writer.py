"""Writing finished CLIENT spans with known start and end times, as cheaply as correctness allows.

The general path is the API: ``tracer.start_span(..., start_time=)`` then ``span.end(end_time=)``
(about 20 µs a span on this machine). When the provider is the SDK's own ``TracerProvider``
whose processors are only the SDK's ``BatchSpanProcessor``/``SimpleSpanProcessor`` (whose
``on_start`` does nothing), the span is built directly as the ``ReadableSpan`` those processors
receive at ``on_end``: same ids, sampler decision, resource, scope, attributes, links and times,
without the mutable-span machinery (about a quarter of the cost). Anything else, a custom
processor included, takes the general path. Spans are roots, never made current.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from kafkahooks._version import __version__

_ROOT = Context()
_SCHEMA = Schemas.V1_44_0.value


class SpanWriter(Protocol):
    def emit(
        self,
        name: str,
        attributes: Mapping[str, Any],
        extra: Mapping[str, Any],
        links: Sequence[Link],
        start_ns: int,
        end_ns: int,
        error: str | None,
    ) -> None:
        """Write one finished CLIENT span; ``extra`` is only built into it if the span is recorded."""


class ApiSpanWriter:
    """Through the tracing API: works with any provider."""

    def __init__(self, provider: Any) -> None:
        self._tracer = provider.get_tracer("kafkahooks", __version__, schema_url=_SCHEMA)

    def emit(
        self,
        name: str,
        attributes: Mapping[str, Any],
        extra: Mapping[str, Any],
        links: Sequence[Link],
        start_ns: int,
        end_ns: int,
        error: str | None,
    ) -> None:
        span = self._tracer.start_span(
            name,
            context=_ROOT,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=links,
            start_time=start_ns,
            record_exception=False,
            set_status_on_exception=False,
        )
        if span.is_recording():
            span.set_attributes(extra)
            if error is not None:
                span.set_status(StatusCode.ERROR, error)
        span.end(end_time=end_ns)


class SdkSpanWriter:
    """Straight to the SDK's built-in processors (see the module docs for when it applies)."""

    def __init__(self, provider: Any, processor: Any) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._readable = ReadableSpan
        self._provider = provider
        self._processor = processor
        self._scope = InstrumentationScope("kafkahooks", __version__, _SCHEMA)
        self._tracer = provider.get_tracer("kafkahooks", __version__, schema_url=_SCHEMA)
        self._checked = processor._span_processors
        self._fallback: ApiSpanWriter | None = None

    def emit(
        self,
        name: str,
        attributes: Mapping[str, Any],
        extra: Mapping[str, Any],
        links: Sequence[Link],
        start_ns: int,
        end_ns: int,
        error: str | None,
    ) -> None:
        provider = self._provider
        if self._processor._span_processors is not self._checked:
            # A processor was added since: make sure it is still one whose on_start does nothing.
            if not _plain_processors(self._processor._span_processors):
                self._fallback = self._fallback or ApiSpanWriter(provider)
            self._checked = self._processor._span_processors
        if self._fallback is not None:
            self._fallback.emit(name, attributes, extra, links, start_ns, end_ns, error)
            return
        enabled = getattr(self._tracer, "_is_enabled", None)
        if enabled is not None and not enabled():
            return
        ids = provider.id_generator
        trace_id = ids.generate_trace_id()
        result = provider.sampler.should_sample(_ROOT, trace_id, name, SpanKind.CLIENT, attributes, links)
        if not result.decision.is_recording():
            return
        flags = trace.TraceFlags.SAMPLED if result.decision.is_sampled() else trace.TraceFlags.DEFAULT
        if ids.is_trace_id_random():
            flags |= getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)
        context = trace.SpanContext(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=trace.TraceFlags(flags),
            trace_state=result.trace_state,
        )
        merged = {**attributes, **(result.attributes or {}), **extra}
        span = self._readable(
            name=name,
            context=context,
            resource=provider.resource,
            attributes=MappingProxyType(merged),
            links=tuple(links),
            kind=SpanKind.CLIENT,
            status=Status(StatusCode.ERROR, error) if error is not None else Status(StatusCode.UNSET),
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=self._scope,
        )
        self._processor.on_end(span)


def _plain_processors(processors: Any) -> bool:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    return processors is not None and all(type(p) in (BatchSpanProcessor, SimpleSpanProcessor) for p in processors)


def span_writer(provider: Any) -> SpanWriter:
    """The cheapest writer that is correct for ``provider``."""
    try:
        from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider

        if type(provider) is TracerProvider:
            multi = getattr(provider, "_active_span_processor", None)
            if (
                type(multi) is SynchronousMultiSpanProcessor
                and _plain_processors(getattr(multi, "_span_processors", None))
                and all(hasattr(provider, a) for a in ("sampler", "id_generator", "resource"))
            ):
                return SdkSpanWriter(provider, multi)
    except ImportError:  # the API without the SDK
        pass
    return ApiSpanWriter(provider)
