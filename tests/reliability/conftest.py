"""Fixtures the reliability tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def every_carrier() -> Iterator[None]:
    """The process configured for every carrier kafkahooks reads (OTEL_PROPAGATORS
    ``tracecontext,baggage,b3multi,jaeger``), so each parser meets the hostile values."""
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.b3 import B3MultiFormat
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.propagators.jaeger import JaegerPropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    before = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator(
            [TraceContextTextMapPropagator(), W3CBaggagePropagator(), B3MultiFormat(), JaegerPropagator()]
        )
    )
    yield
    propagate.set_global_textmap(before)
