"""Self-metrics: what kafkahooks itself dropped, failed to decode or caught, and its buffer sizes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.semconv.schemas import Schemas

from kafkahooks import _fork
from kafkahooks._selfstats import snapshot
from kafkahooks._version import __version__
from kafkahooks.export import buffers

_installed: set[int] = set()
_lock = _fork.Lock()


def _dropped(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(b.dropped, {"kafkahooks.buffer": b.name}) for b in buffers()]


def _size(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(len(b), {"kafkahooks.buffer": b.name}) for b in buffers()]


def _events(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(value, {"kafkahooks.event": name}) for name, value in snapshot().items()]


def install_self_metrics(meter_provider: Any = None) -> None:
    """Register kafkahooks' self-metrics with ``meter_provider`` (the global one by default), once.

    ``kafkahooks.self.dropped`` (items dropped per buffer), ``kafkahooks.self.buffer.size`` (items
    waiting per buffer), ``kafkahooks.self.events`` (hook failures, internal errors, decode errors,
    export failures, by ``kafkahooks.event``).
    """
    provider = meter_provider or metrics.get_meter_provider()
    with _lock:
        if id(provider) in _installed:
            return
        _installed.add(id(provider))
    meter = provider.get_meter("kafkahooks.self", __version__, schema_url=Schemas.V1_44_0.value)
    meter.create_observable_counter(
        "kafkahooks.self.dropped", [_dropped], unit="{item}", description="Telemetry dropped because a buffer was full"
    )
    meter.create_observable_gauge(
        "kafkahooks.self.buffer.size", [_size], unit="{item}", description="Telemetry waiting for the export worker"
    )
    meter.create_observable_counter(
        "kafkahooks.self.events", [_events], unit="{event}", description="Problems kafkahooks absorbed, by kind"
    )
