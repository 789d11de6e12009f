"""The benchmark's modes: what runs around the client in each one.

Every mode that traces uses a real SDK pipeline (``BatchSpanProcessor``, a periodic metric
reader) whose exporters discard, so the SDK's own cost is counted and no network is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafkahooks.bench._ablations import ABLATED_BASES, ABLATIONS, FLOORS, Injector, without


class _NullSpanExporter:
    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


_service: list[Any] = []
"""The service SDK's (tracer provider, meter provider), once installed in this process."""


def install_service_sdk() -> None:
    """Set up the global OpenTelemetry SDK a service would run, whatever the side: a
    ``BatchSpanProcessor`` and a periodic metric reader (once a minute), exporters that discard.
    Modes tracing at 100% then use these providers rather than their own."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    class _NullMetricExporter(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            pass

    if _service:
        return
    tracer = TracerProvider()
    tracer.add_span_processor(BatchSpanProcessor(_NullSpanExporter()))  # type: ignore[arg-type]
    meter = MeterProvider(metric_readers=[PeriodicExportingMetricReader(_NullMetricExporter())])
    trace.set_tracer_provider(tracer)
    metrics.set_meter_provider(meter)
    _service.extend((tracer, meter))


def _tracer_provider(ratio: float = 1.0) -> Any:
    if _service and ratio == 1.0:
        return _service[0]
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(_NullSpanExporter()))  # type: ignore[arg-type]
    return provider


def _meter_provider() -> Any:
    if _service:
        return _service[1]
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    return MeterProvider(metric_readers=[InMemoryMetricReader()])


@dataclass
class Telemetry:
    """What a mode set up: whether the mode's client is kafkahooks' wrapped class and with which
    extra arguments, the SDK providers it exports to, and how to switch a class-patching peer on
    and off around the mode's chunks."""

    wrapped: bool
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    providers: list[Any] = field(default_factory=list)
    teardown: Callable[[], None] | None = None
    on: Callable[[], None] | None = None
    off: Callable[[], None] | None = None
    flushes: bool = True
    """Whether the mode's chunks end with its telemetry flushed (not with an exporter that hangs)."""
    record_headers: list[tuple[str, bytes]] | None = None
    """Headers the mode's producer sends with every record (the application's own, as it were)."""

    def activate(self) -> None:
        if self.on is not None:
            self.on()

    def deactivate(self) -> None:
        if self.off is not None:
            self.off()

    def flush(self) -> None:
        """Have the background threads do now what they would do for this chunk's traffic."""
        if not self.flushes:
            return
        from kafkahooks import export

        export.flush(timeout_s=10.0)
        # Span processors export what the chunk queued. Metric readers are left alone: a periodic
        # reader collects once a minute whatever the traffic, so forcing a collection per chunk
        # would charge the mode a cost it does not have.
        for provider in self.providers:
            if hasattr(provider, "get_tracer"):
                provider.force_flush()

    def flushed(self) -> int:
        """:meth:`flush`, as a benchmark chunk that moves no message."""
        self.flush()
        return 0

    def close(self) -> None:
        if self.teardown is not None:
            self.teardown()
        for provider in self.providers:
            provider.shutdown()

    def dropped(self) -> int:
        from kafkahooks.export import buffers

        return sum(b.dropped for b in buffers())


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    setup: Callable[[str, str], Telemetry]
    """(client library, client role) -> what runs around the mode's client."""
    share: float = 1.0
    """The share of a round's messages this mode's pairs run: per-record tracers run at a tenth of
    the bare client's speed, and their ratios need no 1% resolution."""
    needs: dict[str, str] = field(default_factory=dict)
    """Modules the mode needs per client (a peer's instrumentation), when they are optional."""
    default: bool = True
    """Whether a run without ``--mode`` includes it (the mixed-fleet variants are asked for)."""
    clients: tuple[str, ...] | None = None
    """The clients the mode exists for (a peer that instruments one library only); None: both."""

    def serves(self, client: str) -> bool:
        return self.clients is None or client in self.clients


def missing(mode: Mode, clients: tuple[str, ...]) -> list[str]:
    """The modules ``mode`` needs for ``clients`` that are not installed."""
    import importlib.util

    out = []
    for client in clients:
        module = mode.needs.get(client)
        if not module:
            continue
        try:
            found = importlib.util.find_spec(module)
        except ImportError:  # a dotted name whose parent package is missing raises, not None
            found = None
        if found is None:
            out.append(module)
    return out


def _bare(client: str, role: str) -> Telemetry:
    return Telemetry(wrapped=False)


def _off(client: str, role: str) -> Telemetry:
    return Telemetry(wrapped=True, client_kwargs={"tracing": "off"})


def _hooks(ratio: float = 1.0) -> Callable[[str, str], Telemetry]:
    """``tracing="hooks"``, its spans sampled at ``ratio`` by the tracer provider's own sampler
    (``ParentBased(TraceIdRatioBased(ratio))``, as the ``otel-1pct`` peer's); metrics and data
    streams are not sampled."""

    def setup(client: str, role: str) -> Telemetry:
        tracer, meter = _tracer_provider(ratio), _meter_provider()
        return Telemetry(
            wrapped=True,
            client_kwargs={"tracing": "hooks", "tracer_provider": tracer, "meter_provider": meter},
            providers=[tracer, meter],
        )

    return setup


def _hooks_recorder(client: str, role: str) -> Telemetry:
    from kafkahooks.latency import FlightRecorder

    tracer, meter = _tracer_provider(), _meter_provider()
    return Telemetry(
        wrapped=True,
        client_kwargs={
            "tracing": "hooks",
            "tracer_provider": tracer,
            "meter_provider": meter,
            "hooks": [FlightRecorder()],
        },
        providers=[tracer, meter],
    )


class _StuckSpanExporter(_NullSpanExporter):
    """A collector that never answers: every export blocks until the run ends."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()

    def export(self, spans: Sequence[Any]) -> Any:
        self.release.wait()
        return super().export(spans)

    def shutdown(self) -> None:
        self.release.set()


def _hooks_stuck(client: str, role: str) -> Telemetry:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    # A synchronous processor in front of a hung exporter: the worst case, since kafkahooks' own
    # export worker is the one left waiting, and its bounded buffers must drop (and count) instead.
    exporter = _StuckSpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
    meter = _meter_provider()
    return Telemetry(
        wrapped=True,
        client_kwargs={"tracing": "hooks", "tracer_provider": tracer, "meter_provider": meter},
        providers=[tracer, meter],
        teardown=exporter.release.set,
        flushes=False,
    )


IMPORTED_BY_HOOKS = (
    "kafkahooks._otel",
    "kafkahooks.datastreams",
    "kafkahooks.datastreams._exporters",
    "kafkahooks.hooks._opened",
    "kafkahooks.metrics",
    "kafkahooks.tracing",
    "opentelemetry.propagate",  # the trace-context carriers load the propagators on first use
)
"""What a ``tracing="hooks"`` client imports beyond the wrapped client's own module (the ``imports``
mode's modules; ``tests/test_bench_modes.py`` keeps the list whole)."""


def _imports(client: str, role: str) -> Telemetry:
    """The bare client, in a process that imported everything ``tracing="hooks"`` imports, nothing
    installed: what the imports alone change (the heap's layout, the collector's long-lived
    objects), a control for the modes that install."""
    import importlib

    importlib.import_module("kafkahooks.aiokafka" if client == "aiokafka" else "kafkahooks.kafka")
    for name in IMPORTED_BY_HOOKS:
        importlib.import_module(name)
    return Telemetry(wrapped=False)


def _dsm(client: str, role: str) -> Telemetry:
    from kafkahooks.datastreams import DataStreams, OtelMetricsExporter

    meter = _meter_provider()
    streams = DataStreams("bench", "bench", exporters=[OtelMetricsExporter(meter)])
    return Telemetry(wrapped=True, client_kwargs={"tracing": "off", "data_streams": streams}, providers=[meter])


def _dsm_noheader(client: str, role: str) -> Telemetry:
    from kafkahooks.datastreams import DataStreams, OtelMetricsExporter

    meter = _meter_provider()
    streams = DataStreams("bench", "bench", exporters=[OtelMetricsExporter(meter)], header_mode="off")
    return Telemetry(wrapped=True, client_kwargs={"tracing": "off", "data_streams": streams}, providers=[meter])


class _NoopHook:
    """A user hook that does nothing on every write and read: the connection taps alone."""

    def on_broker_write(self, *args: Any) -> None:
        pass

    def on_broker_read(self, *args: Any) -> None:
        pass


def _noop(client: str, role: str) -> Telemetry:
    return Telemetry(wrapped=True, client_kwargs={"tracing": "off", "hooks": [_NoopHook()]})


def _spans(client: str, role: str) -> Telemetry:
    from kafkahooks.tracing import BrokerSpans

    tracer = _tracer_provider()
    spans = BrokerSpans(role, tracer_provider=tracer)
    return Telemetry(wrapped=True, client_kwargs={"tracing": "off", "hooks": [spans]}, providers=[tracer])


def _metrics(client: str, role: str) -> Telemetry:
    from kafkahooks.metrics import MetricsHooks

    meter = _meter_provider()
    return Telemetry(
        wrapped=True, client_kwargs={"tracing": "off", "hooks": [MetricsHooks(meter_provider=meter)]}, providers=[meter]
    )


def _dsm_record(client: str, role: str) -> Telemetry:
    from kafkahooks.datastreams import DataStreams, OtelMetricsExporter

    meter = _meter_provider()
    streams = DataStreams("bench", "bench", exporters=[OtelMetricsExporter(meter)], header_mode="record")
    return Telemetry(wrapped=True, client_kwargs={"tracing": "off", "data_streams": streams}, providers=[meter])


def _hooks_record(client: str, role: str) -> Telemetry:
    from kafkahooks.datastreams import DataStreams, OtelMetricsExporter

    tracer, meter = _tracer_provider(), _meter_provider()
    streams = DataStreams("bench", "bench", exporters=[OtelMetricsExporter(meter)], header_mode="record")
    return Telemetry(
        wrapped=True,
        client_kwargs={"tracing": "hooks", "tracer_provider": tracer, "meter_provider": meter, "data_streams": streams},
        providers=[tracer, meter],
    )


def _propagator(carriers: str) -> Any:
    """What ``OTEL_PROPAGATORS=carriers`` builds: each name's ``opentelemetry_propagator`` entry
    point, as OpenTelemetry loads them (the bench process has read its environment already)."""
    from importlib.metadata import entry_points

    from opentelemetry.propagators.composite import CompositePropagator

    found = entry_points(group="opentelemetry_propagator")
    parts = []
    for name in carriers.split(","):
        point = next(iter(found.select(name=name)), None)
        if point is None:
            raise ImportError(f"no OpenTelemetry propagator named {name!r} is installed")
        parts.append(point.load()())
    return CompositePropagator(parts)


def _in_span(carriers: str) -> Callable[[str, str], Telemetry]:
    """``tracing="hooks"`` producing inside a sampled application span with one baggage entry, the
    process's propagator set as ``OTEL_PROPAGATORS=carriers`` would: every batch's first record
    carries the context in each of those formats."""

    def setup(client: str, role: str) -> Telemetry:
        from opentelemetry import baggage, context, propagate, trace

        propagate.set_global_textmap(_propagator(carriers))
        tracer, meter = _tracer_provider(), _meter_provider()
        span = tracer.get_tracer("bench").start_span("app")
        current = baggage.set_baggage("tenant", "acme", context=trace.set_span_in_context(span))
        tokens: list[Any] = []
        return Telemetry(
            wrapped=True,
            client_kwargs={"tracing": "hooks", "tracer_provider": tracer, "meter_provider": meter},
            providers=[tracer, meter],
            on=lambda: tokens.append(context.attach(current)),
            off=lambda: context.detach(tokens.pop()),
            teardown=span.end,
        )

    return setup


def _header(client: str, role: str) -> Telemetry:
    # What a pathway header on every record costs the client itself: the same bytes, no kafkahooks.
    return Telemetry(wrapped=False, record_headers=[("dd-pathway-ctx-base64", b"A" * 28)])


def _records(client: str, role: str) -> Telemetry:
    tracer = _tracer_provider()
    return Telemetry(wrapped=True, client_kwargs={"tracing": "records", "tracer_provider": tracer}, providers=[tracer])


def _otel(ratio: float) -> Callable[[str, str], Telemetry]:
    def setup(client: str, role: str) -> Telemetry:
        tracer = _tracer_provider(ratio)
        if client == "kafka-python":
            from opentelemetry.instrumentation.kafka import KafkaInstrumentor

            instrumentor: Any = KafkaInstrumentor()
        else:
            from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

            instrumentor = AIOKafkaInstrumentor()
        return Telemetry(
            wrapped=False,
            providers=[tracer],
            on=lambda: instrumentor.instrument(tracer_provider=tracer),
            off=instrumentor.uninstrument,
        )

    return setup


_DDTRACE_ENV = {
    "DD_DATA_STREAMS_ENABLED": "true",
    "DD_SERVICE": "bench",
    # No agent listens here: each upload (one a second) is refused at connect, so the figure is
    # everything ddtrace does in the client's process except that one request.
    "DD_TRACE_AGENT_URL": "http://127.0.0.1:9",
    "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
    "DD_REMOTE_CONFIGURATION_ENABLED": "false",
    "DD_TRACE_STARTUP_LOGS": "false",
}


def _ddtrace(client: str, role: str) -> Telemetry:
    import logging
    import os

    # ddtrace reads its configuration once, when first imported: this process is the mode's own.
    os.environ.update(_DDTRACE_ENV)
    # ddtrace offers no public unpatch(); its integration module has the pair the bench needs to
    # switch it off for the bare client's chunks.
    from ddtrace.contrib.internal.aiokafka import patch as integration

    logging.getLogger("ddtrace").setLevel(logging.CRITICAL)  # "failed to send" once a second
    return Telemetry(wrapped=False, on=integration.patch, off=integration.unpatch)


_PEERS = {
    "aiokafka": "opentelemetry.instrumentation.aiokafka",
    "kafka-python": "opentelemetry.instrumentation.kafka",
}

MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("bare", "the client alone (the limit)", _bare),
        Mode("off", "kafkahooks wrapper, tracing off, no hooks", _off),
        Mode(
            "imports",
            'the bare client beside everything tracing="hooks" imports, nothing installed',
            _imports,
            default=False,
        ),
        Mode("hooks", 'tracing="hooks": spans at 100% + data streams + metrics', _hooks()),
        Mode("hooks-1pct", 'tracing="hooks" with its spans sampled at 1% (data streams, metrics whole)', _hooks(0.01)),
        Mode("hooks-stuck", 'tracing="hooks" with the span exporter hung for the whole run', _hooks_stuck),
        Mode(
            "hooks-recorder",
            'tracing="hooks" and a FlightRecorder (10 000 requests) in hooks=',
            _hooks_recorder,
            default=False,
        ),
        Mode("dsm", "data streams only (per-batch checkpoints)", _dsm),
        Mode(
            "noop",
            "one user hook whose on_broker_write/on_broker_read do nothing (the taps alone)",
            _noop,
            default=False,
        ),
        Mode("spans", "the span plugin alone (BrokerSpans in hooks=, tracing off)", _spans, default=False),
        Mode("metrics", "the metrics plugin alone (MetricsHooks in hooks=, tracing off)", _metrics, default=False),
        Mode("dsm-noheader", 'data streams only, header_mode="off" (no header written)', _dsm_noheader, default=False),
        Mode(
            "dsm-record",
            'data streams only, header_mode="record" (a header on every record)',
            _dsm_record,
            default=False,
        ),
        Mode("header", "the bare client sending a 28-byte pathway header on every record", _header, default=False),
        Mode(
            "hooks-record",
            'tracing="hooks" with header_mode="record" (for per-record consumers downstream)',
            _hooks_record,
            default=False,
        ),
        Mode(
            "hooks-span",
            'tracing="hooks" sending inside an application span with baggage (W3C traceparent and baggage)',
            _in_span("tracecontext,baggage"),
            default=False,
        ),
        Mode(
            "hooks-span-b3",
            "hooks-span with OTEL_PROPAGATORS=tracecontext,baggage,b3multi (W3C and B3 headers)",
            _in_span("tracecontext,baggage,b3multi"),
            needs=dict.fromkeys(_PEERS, "opentelemetry.propagators.b3"),
            default=False,
        ),
        Mode(
            "hooks-span-jaeger",
            "hooks-span with OTEL_PROPAGATORS=jaeger (uber-trace-id and uberctx-tenant)",
            _in_span("jaeger"),
            needs=dict.fromkeys(_PEERS, "opentelemetry.propagators.jaeger"),
            default=False,
        ),
        Mode("records", 'tracing="records": kafkahooks per-record spans', _records, 0.2),
        Mode("otel", "OpenTelemetry's per-record instrumentation, 100% sampled", _otel(1.0), 0.2, _PEERS),
        Mode("otel-1pct", "OpenTelemetry's per-record instrumentation, 1% sampled", _otel(0.01), 0.2, _PEERS),
        Mode(
            "ddtrace",
            "Datadog's tracer with data streams, per record (aiokafka only: ddtrace does not instrument kafka-python)",
            _ddtrace,
            0.1,
            {"aiokafka": "ddtrace"},
            clients=("aiokafka",),
        ),
    )
}
"""Every mode, in the order rounds run them."""

DEFAULT_MODES = tuple(name for name, mode in MODES.items() if mode.default)
"""What a run without ``--mode`` measures."""

DECOMPOSITION = ("off", "noop", "spans", "metrics", "dsm-noheader", "dsm", "hooks")
"""``--decompose``: what ``tracing="hooks"`` costs, piece by piece (each plugin alone)."""


def _injecting(headers: list[tuple[str, bytes]] | None) -> Callable[[str, str], Telemetry]:
    """A floor of the ablations: one batch header injector of ``headers``, nothing else."""

    def setup(client: str, role: str) -> Telemetry:
        return Telemetry(wrapped=True, client_kwargs={"tracing": "off", "hooks": [Injector(headers)]})

    return setup


def _ablated(base: str, name: str) -> Mode:
    def setup(client: str, role: str) -> Telemetry:
        return without(name, MODES[base].setup, client, role)

    what, _, clients = ABLATIONS[name]
    return Mode(f"{base}-no-{name}", f"{base} without {what} (an ablation)", setup, default=False, clients=clients)


MODES.update({name: Mode(name, what, _injecting(headers), default=False) for name, (what, headers) in FLOORS.items()})
MODES.update({m.name: m for m in (_ablated(base, name) for base in ABLATED_BASES for name in ABLATIONS)})
