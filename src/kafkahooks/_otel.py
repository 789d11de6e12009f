"""The one module that reads OpenTelemetry SDK internals: span and metric writes at a fraction of
the public API's cost, for the export worker, with the public API as the fallback for anything
it does not recognise.

Why: per request, the export worker writes one span and at least one histogram point. Through
the public API these cost about 20 µs and 10 µs on a 2-CPU machine (a mutable span with its
locks; a ``Measurement`` whose attributes are cleaned, copied, sorted and hashed on every call),
which is most of kafkahooks' whole budget. Both paths below hand the SDK exactly what its public
path would: the same ``ReadableSpan`` to the same processors, the same value to the same
aggregation objects.

- :func:`span_writer` -- finished CLIENT spans with known start and end. With the SDK's own
  ``TracerProvider`` whose processors are only ``BatchSpanProcessor``/``SimpleSpanProcessor``
  (whose ``on_start`` does nothing), the span is built as the ``ReadableSpan`` those processors
  receive at ``on_end``: same ids, sampler decision, resource, scope, attributes, links and times.
- :func:`recorder` -- ``record``/``add`` on an SDK ``Histogram`` or ``Counter``. The first value for
  an attribute set goes through the public API, which creates the SDK's aggregation objects; later
  values for the *same attributes dict* (callers cache them) go straight to those aggregations,
  after checking on every call that the SDK still holds them and that no reader was added or
  removed. An exemplar filter that could sample on the worker (``AlwaysOn``) keeps the public path.
  :func:`record_many` records one value ``count`` times: into an explicit-bucket histogram's
  aggregation at once (its sum, min, max and the value's bucket), what ``count`` calls would add.

:func:`check_internals` names what moved if an SDK release changes any of this (a test runs it),
and each writer falls back to the public API on its own when what it finds is not what it knows.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from kafkahooks._version import __version__

_ROOT = Context()
SCHEMA_URL = Schemas.V1_44_0.value
"""The semantic conventions kafkahooks' spans and metrics follow."""


def check_internals() -> list[str]:
    """SDK names this module relies on that the installed opentelemetry-sdk no longer has."""
    missing: list[str] = []
    try:
        from opentelemetry.sdk.metrics._internal import _view_instrument_match, measurement_consumer
        from opentelemetry.sdk.metrics._internal import instrument as sdk_instrument
        from opentelemetry.sdk.metrics._internal import metric_reader_storage as storage
        from opentelemetry.sdk.trace import ReadableSpan, SynchronousMultiSpanProcessor, TracerProvider
    except ImportError as exc:
        return [f"opentelemetry.sdk: {exc}"]
    import inspect

    from kafkahooks._symbols import lacks

    def needs(obj: Any, *names: str) -> None:
        missing.extend(lacks(obj, *names))

    needs(sdk_instrument._Synchronous, "_measurement_consumer", "_meter_config")
    for name in ("_Histogram", "_Counter"):
        if not hasattr(sdk_instrument, name):
            missing.append(f"opentelemetry.sdk.metrics._internal.instrument.{name}")
    needs(measurement_consumer.SynchronousMeasurementConsumer, "_reader_storages", "_sdk_config")
    needs(storage.MetricReaderStorage, "_instrument_view_instrument_matches")
    needs(_view_instrument_match._ViewInstrumentMatch, "_attributes_aggregation", "_view")
    if not hasattr(_view_instrument_match, "_hash_attributes"):
        missing.append("opentelemetry.sdk.metrics._internal._view_instrument_match._hash_attributes")
    needs(TracerProvider, "_active_span_processor", "sampler", "id_generator", "resource")
    needs(SynchronousMultiSpanProcessor, "_span_processors")
    from opentelemetry.sdk.trace.sampling import ParentBased, StaticSampler

    needs(ParentBased, "_root")  # _static_decision: the root sampler, what kafkahooks' root spans get
    needs(StaticSampler, "_decision")
    from opentelemetry import context as context_api
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
    from opentelemetry.sdk.metrics._internal.view import View
    from opentelemetry.sdk.trace import Tracer

    if not hasattr(context_api, "_RUNTIME_CONTEXT"):
        missing.append("opentelemetry.context._RUNTIME_CONTEXT")
    needs(ContextVarsRuntimeContext, "_current_context")
    from opentelemetry.sdk.metrics._internal import aggregation as sdk_aggregation

    histogram = getattr(sdk_aggregation, "_ExplicitBucketHistogramAggregation", None)
    if histogram is None:
        missing.append("opentelemetry.sdk.metrics._internal.aggregation._ExplicitBucketHistogramAggregation")
    else:
        # The state record_many adds to, as the SDK's own code names it (_HISTOGRAM_STATE).
        needs(histogram, "_get_empty_bucket_counts", "_lock", "_value", "_sum", "_record_min_max")
        needs(histogram, "_min", "_max", "_boundaries")
    needs(View, "_attribute_keys")
    for cls in (Tracer, sdk_instrument._Synchronous):
        if not hasattr(cls, "_is_enabled"):
            missing.append(f"{cls.__module__}.{cls.__qualname__}._is_enabled")
    if "instrumentation_scope" not in inspect.signature(ReadableSpan.__init__).parameters:
        missing.append("opentelemetry.sdk.trace.ReadableSpan(instrumentation_scope=)")
    return missing


# -- the current span ------------------------------------------------------------------------------


def _context_variable() -> tuple[Any, Callable[[], Any]] | None:
    """(the runtime context, its context variable's ``get``) when the API runs its default
    contextvars runtime context, else None (an API release that moved these, or a replaced one)."""
    try:
        import contextvars

        from opentelemetry import context as context_api
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

        runtime = context_api._RUNTIME_CONTEXT
        var = getattr(runtime, "_current_context", None)
        if type(runtime) is not ContextVarsRuntimeContext or not isinstance(var, contextvars.ContextVar):
            return None
    except Exception:
        return None
    return runtime, var.get


def _span_context_reader() -> Callable[[], Any]:
    """``current_span_context()``: the application's current span context, read straight from the
    API's context variable when the runtime context is the default one (a dict lookup instead of
    five Python calls through ``trace.get_current_span()``); the public API otherwise."""

    def public() -> Any:
        return trace.get_current_span().get_span_context()

    found = _context_variable()
    try:
        from opentelemetry import context as context_api
        from opentelemetry.trace.propagation import _SPAN_KEY
    except Exception:  # an API release that moved these: the public path
        return public
    if found is None:
        return public
    runtime, get = found
    invalid = trace.INVALID_SPAN_CONTEXT

    def fast() -> Any:
        if context_api._RUNTIME_CONTEXT is not runtime:  # replaced since: follow the API
            return public()
        span = get().get(_SPAN_KEY)
        if span is None:
            return invalid
        if not isinstance(span, trace.Span):
            return public()
        return span.get_span_context()

    return fast


def _context_reader() -> Callable[[], Any]:
    """``current_context()``: the application's current OpenTelemetry context object, from the
    context variable (one call) when the runtime context is the default one."""
    from opentelemetry import context as context_api

    found = _context_variable()
    if found is None:
        return context_api.get_current
    runtime, get = found

    def fast() -> Any:
        if context_api._RUNTIME_CONTEXT is not runtime:
            return context_api.get_current()
        return get()

    return fast


current_span_context: Callable[[], Any] = _span_context_reader()
"""The application's current span context (``INVALID_SPAN_CONTEXT`` when there is none)."""
current_context: Callable[[], Any] = _context_reader()
"""The application's current context (span, baggage), the same object while it is unchanged."""


# -- spans ----------------------------------------------------------------------------------------


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
        """Write one finished CLIENT span, a root; ``extra`` is only built into it if it is recorded."""


class ApiSpanWriter:
    """Through the tracing API: works with any provider."""

    def __init__(self, provider: Any) -> None:
        self._tracer = provider.get_tracer("kafkahooks", __version__, schema_url=SCHEMA_URL)

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


_UNSET = Status(StatusCode.UNSET)


class SdkSpanWriter:
    """Straight to the SDK's built-in processors (see the module docs for when it applies)."""

    def __init__(self, provider: Any, processor: Any) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._readable = ReadableSpan
        self._provider = provider
        self._processor = processor
        self._scope = InstrumentationScope("kafkahooks", __version__, SCHEMA_URL)
        self._tracer = provider.get_tracer("kafkahooks", __version__, schema_url=SCHEMA_URL)
        self._enabled: Callable[[], bool] | None = getattr(self._tracer, "_is_enabled", None)
        """The tracer's own switch (SDK 1.39+), looked up once."""
        self._checked = processor._span_processors
        self._fallback: ApiSpanWriter | None = None
        self._sampler: Any = None
        self._static: tuple[bool, bool] | None = None
        """(recording, sampled) when the provider's sampler decides every root span alike."""
        random = getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)
        self._random_ids = provider.id_generator.is_trace_id_random()
        extra = random if self._random_ids else 0
        self._flags = {
            sampled: trace.TraceFlags((trace.TraceFlags.SAMPLED if sampled else 0) | extra) for sampled in (False, True)
        }

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
        enabled = self._enabled
        if enabled is not None and not enabled():
            return
        ids = provider.id_generator
        sampler = provider.sampler
        if sampler is not self._sampler:
            self._sampler, self._static = sampler, _static_decision(sampler)
        static = self._static
        if static is not None and not static[0]:
            return
        trace_id = ids.generate_trace_id()
        if static is not None:
            # What the sampler would answer for any root span: no call, no result object.
            sampled, trace_state, initial = static[1], None, attributes
        else:
            result = sampler.should_sample(_ROOT, trace_id, name, SpanKind.CLIENT, attributes, links)
            decision = result.decision
            if not decision.is_recording():
                return
            # As the SDK starts a span: with the attributes the sampler answered (a sampler that
            # keeps the span's own returns them too), then the ones set after the start.
            sampled, trace_state, initial = decision.is_sampled(), result.trace_state, result.attributes
        context = trace.SpanContext(trace_id, ids.generate_span_id(), False, self._flags[sampled], trace_state)
        merged = dict(initial) if initial else {}
        merged.update(extra)
        span = self._readable(
            name=name,
            context=context,
            resource=provider.resource,
            attributes=MappingProxyType(merged),
            links=tuple(links),
            kind=SpanKind.CLIENT,
            status=Status(StatusCode.ERROR, error) if error is not None else _UNSET,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=self._scope,
        )
        # The provider's processors themselves (checked above to be the SDK's batch or simple
        # ones), in its order: what its multi-processor's on_end does, one call fewer.
        for span_processor in self._checked:
            span_processor.on_end(span)


def _static_decision(sampler: Any) -> tuple[bool, bool] | None:
    """(recording, sampled) if ``sampler`` gives every root span the same answer whatever its trace
    id, name and attributes, with no attributes or trace state of its own: the SDK's
    ``StaticSampler`` (``ALWAYS_ON``, ``ALWAYS_OFF``), alone or as the root sampler of a
    ``ParentBased`` one (the SDK's default, ``parentbased_always_on``; kafkahooks' spans are roots).
    None for any other sampler, subclasses included: it is asked for every span."""
    try:
        from opentelemetry.sdk.trace.sampling import Decision, ParentBased, StaticSampler

        if type(sampler) is ParentBased:
            sampler = sampler._root
        if type(sampler) is not StaticSampler:
            return None
        decision = sampler._decision
        if not isinstance(decision, Decision):
            return None
        # A StaticSampler hands back the span's own attributes and no trace state for a root.
        return decision in (Decision.RECORD_ONLY, Decision.RECORD_AND_SAMPLE), decision is Decision.RECORD_AND_SAMPLE
    except Exception:
        return None


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


# -- metrics --------------------------------------------------------------------------------------

Record = Callable[[float, Mapping[str, Any]], None]
"""``record(value, attributes)``: a histogram's ``record`` or a counter's ``add``."""


class _Value:
    """What an SDK aggregation reads of a measurement when it samples no exemplar: the value."""

    __slots__ = ("attributes", "context", "instrument", "time_unix_nano", "value")

    def __init__(self, instrument: Any) -> None:
        self.value: float = 0
        self.time_unix_nano = 0
        self.instrument = instrument
        self.context = _ROOT
        self.attributes = None


class _SdkRecorder:
    """``record(value, attributes)`` into one SDK instrument's aggregations (see the module docs).

    Used by the export worker only (one thread). ``attributes`` must be a dict the caller keeps
    and never changes: it is the cache key, by identity.
    """

    _MAX_SETS = 4096

    def __init__(self, instrument: Any, public: Record, hash_attributes: Callable[[Any], Any]) -> None:
        self._instrument = instrument
        self._public = public
        self._hash = hash_attributes
        self._consumer = instrument._measurement_consumer
        self._storages: Any = None
        self._sets: dict[int, tuple[Mapping[str, Any], tuple[tuple[dict[Any, Any], Any, Any], ...]] | None] = {}
        self._value = _Value(instrument)

    def __call__(self, value: float, attributes: Mapping[str, Any]) -> None:
        storages = self._consumer._reader_storages
        if storages is not self._storages:  # a reader was added or removed: learn again
            self._sets.clear()
            self._storages = storages
        found = self._sets.get(id(attributes))
        if found is None or found[0] is not attributes or not self._instrument._is_enabled():
            self._public(value, attributes)
            self._learn(attributes)
            return
        aggregations = found[1]
        for table, key, aggregation in aggregations:
            if table.get(key) is not aggregation:  # the SDK let go of it: back to the public path
                del self._sets[id(attributes)]
                self._public(value, attributes)
                return
        measurement = self._value
        measurement.value = value  # no timestamp: the aggregations read it only to sample exemplars
        for _, _, aggregation in aggregations:
            aggregation.aggregate(measurement, False)

    def many(self, value: float, attributes: Mapping[str, Any], count: int) -> None:
        """``count`` measurements of ``value``: the first as :meth:`__call__` records it (which
        checks and learns the attribute set), the others at once into each explicit-bucket
        histogram aggregation that call reached directly, one by one into anything else."""
        self(value, attributes)
        if count <= 1:
            return
        found = self._sets.get(id(attributes))
        if found is None or found[0] is not attributes:  # on the public path: no shortcut
            for _ in range(count - 1):
                self(value, attributes)
            return
        measurement = self._value
        measurement.value = value
        histogram_type = _histogram_aggregation()
        for _, _, aggregation in found[1]:
            h: Any = aggregation
            if type(h) is histogram_type and _weighable(h):
                with h._lock:
                    if h._value is None:
                        h._value = h._get_empty_bucket_counts()
                    h._sum += value * (count - 1)
                    if h._record_min_max:
                        h._min = min(h._min, value)
                        h._max = max(h._max, value)
                    h._value[bisect_left(h._boundaries, value)] += count - 1
            else:
                for _ in range(count - 1):
                    h.aggregate(measurement, False)

    def _learn(self, attributes: Mapping[str, Any]) -> None:
        if id(attributes) in self._sets and self._sets[id(attributes)] is None:
            return
        if len(self._sets) >= self._MAX_SETS:
            self._sets.clear()
        found: list[tuple[dict[Any, Any], Any, Any]] = []
        try:
            for storage in self._consumer._reader_storages.values():
                for match in storage._instrument_view_instrument_matches.get(self._instrument, ()):
                    keys = match._view._attribute_keys
                    kept = dict(attributes) if keys is None else {k: v for k, v in attributes.items() if k in keys}
                    key = self._hash(kept)
                    aggregation = match._attributes_aggregation.get(key)
                    if aggregation is None:
                        raise LookupError(key)
                    found.append((match._attributes_aggregation, key, aggregation))
        except Exception:  # not what this module knows: this attribute set stays on the public path
            self._sets[id(attributes)] = None
            return
        self._sets[id(attributes)] = (attributes, tuple(found)) if found else None


_HISTOGRAM_STATE = ("_lock", "_value", "_sum", "_record_min_max", "_min", "_max", "_boundaries")


def _histogram_aggregation() -> Any:
    from opentelemetry.sdk.metrics._internal.aggregation import _ExplicitBucketHistogramAggregation

    return _ExplicitBucketHistogramAggregation


def _weighable(aggregation: Any) -> bool:
    """Whether an explicit-bucket histogram aggregation keeps the state :meth:`_SdkRecorder.many`
    adds to (the SDK's own ``aggregate`` updates exactly these)."""
    return all(hasattr(aggregation, name) for name in _HISTOGRAM_STATE)


def record_many(record: Record, value: float, attributes: Mapping[str, Any], count: int) -> None:
    """What ``count`` calls of ``record(value, attributes)`` record, in one call where
    ``record`` is kafkahooks' SDK recorder (a histogram's count for the value grows by ``count``
    at once), else in ``count`` calls."""
    if type(record) is _SdkRecorder:
        record.many(value, attributes, count)
        return
    for _ in range(count):
        record(value, attributes)


def recorder(instrument: Any) -> Record:
    """``record`` (histogram) or ``add`` (counter) for ``instrument``, as cheap as is correct."""
    public: Record = instrument.record if hasattr(instrument, "record") else instrument.add
    try:
        from opentelemetry.sdk.metrics._internal import instrument as sdk_instrument
        from opentelemetry.sdk.metrics._internal._view_instrument_match import _hash_attributes
        from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOffExemplarFilter, TraceBasedExemplarFilter

        if type(instrument) not in (sdk_instrument._Histogram, sdk_instrument._Counter):
            return public
        consumer = instrument._measurement_consumer
        exemplars = consumer._sdk_config.exemplar_filter
        if type(exemplars) not in (TraceBasedExemplarFilter, AlwaysOffExemplarFilter):
            return public  # it might sample on the worker: leave every value to the SDK
        if not isinstance(consumer._reader_storages, Mapping):
            return public
        return _SdkRecorder(instrument, public, _hash_attributes)
    except Exception:
        return public
