"""The bench's ``imports`` mode: the bare client beside everything ``tracing="hooks"`` imports."""

from __future__ import annotations

import json
import subprocess
import sys

from kafkahooks.bench._modes import MODES

_PROBE = """
import asyncio, json, sys
from kafkahooks.bench._modes import MODES, install_service_sdk

which, bootstrap = sys.argv[1], sys.argv[2]
install_service_sdk()
telemetry = MODES[which].setup("aiokafka", "producer")
if telemetry.wrapped:
    from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def traffic():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **telemetry.client_kwargs)
        await producer.start()
        await (await producer.send("imports-probe", b"x"))
        await producer.stop()
        consumer = AIOKafkaConsumer(
            "imports-probe", bootstrap_servers=bootstrap, auto_offset_reset="earliest", **telemetry.client_kwargs
        )
        await consumer.start()
        await consumer.getmany(timeout_ms=2000)
        await consumer.stop()

    asyncio.run(traffic())
telemetry.close()
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("kafkahooks", "opentelemetry")))))
"""


def _modules(mode: str, bootstrap: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, mode, bootstrap], capture_output=True, text=True, timeout=120, check=False
    )
    assert 0 == proc.returncode, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_imports_mode_imports_what_hooks_imports_and_installs_nothing(bootstrap: str) -> None:
    """A process that produced and consumed with ``tracing="hooks"`` imported no kafkahooks or
    OpenTelemetry module that the ``imports`` mode leaves out, and the mode wraps no client."""
    assert MODES["imports"].setup("aiokafka", "producer").wrapped is False
    hooks = _modules("hooks", bootstrap)
    imports = _modules("imports", bootstrap)
    assert "kafkahooks.tracing._broker_spans" in hooks  # the probe did run the plugins
    assert set() == hooks - imports


def test_the_sampled_hooks_mode_is_hooks_with_its_spans_sampled_at_one_percent() -> None:
    """``hooks-1pct`` differs from ``hooks`` only by its tracer provider's sampler: the ratio
    sampler the ``otel-1pct`` peer runs, so the two 1% rows compare like with like."""
    hooks = MODES["hooks"].setup("aiokafka", "producer")
    sampled = MODES["hooks-1pct"].setup("aiokafka", "producer")
    peer = MODES["otel-1pct"].setup("aiokafka", "producer")
    try:
        assert {k for k in sampled.client_kwargs if k != "tracer_provider"} == {
            k for k in hooks.client_kwargs if k != "tracer_provider"
        }
        assert "hooks" == sampled.client_kwargs["tracing"]
        ratio = sampled.client_kwargs["tracer_provider"].sampler.get_description()
        assert "TraceIdRatioBased{0.01}" in ratio
        assert ratio == peer.providers[0].sampler.get_description()
        assert "{0.01}" not in hooks.client_kwargs["tracer_provider"].sampler.get_description()
    finally:
        for telemetry in (hooks, sampled, peer):
            telemetry.close()
