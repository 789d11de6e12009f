"""What a new user meets with either wrapped client: strict mode, flushing, plugins given twice,
missing extras and broken configurations."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from kafkahooks.metrics import MetricLabels, MetricsHooks
from tests._drivers import CLIENTS, consume, produce


class WriteFails:
    kafkahooks_inline = True

    def on_broker_write(self, meta: Any, key: int, n: int, wait: int, took: int, err: Any) -> None:
        raise LookupError("hook bug")


class FetchBatchFails:
    kafkahooks_inline = True

    def on_fetch_batch_read(self, meta: Any, topic: str, partition: int, metrics: Any) -> None:
        raise LookupError("hook bug")


@pytest.mark.parametrize("client", CLIENTS)
def test_strict_hooks_surface_in_the_applications_call(client: str, bootstrap: str, topic: str) -> None:
    """strict_hooks=True: an exception a hook raised on the client's I/O path is raised again in the
    application's own call (produce: send, flush or close; consume: poll/getmany or close)."""
    with pytest.raises(LookupError, match="hook bug"):
        produce(client, bootstrap, topic, [(b"v", None)] * 3, hooks=[WriteFails()], strict_hooks=True)
    produce(client, bootstrap, topic, [(b"v", None)] * 3)
    with pytest.raises(LookupError, match="hook bug"):
        consume(client, bootstrap, topic, 3, hooks=[FetchBatchFails()], strict_hooks=True)


@pytest.mark.parametrize("client", CLIENTS)
def test_without_strict_a_failing_hook_changes_nothing(client: str, bootstrap: str, topic: str) -> None:
    """The same hooks without strict mode: every record produced and consumed, no exception."""
    produce(client, bootstrap, topic, [(b"v", None)] * 3, hooks=[WriteFails()])
    assert 3 == len(consume(client, bootstrap, topic, 3, hooks=[FetchBatchFails()]))


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    found: list[Any] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


@pytest.mark.parametrize("client", CLIENTS)
def test_the_applications_metrics_plugin_is_flushed_on_close(client: str, bootstrap: str, topic: str) -> None:
    """A MetricsHooks of the application's own has its points recorded by the time close()/stop()
    returns: a short script reads them at once, no flush of its own."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    produce(client, bootstrap, topic, [(b"v", None)] * 25, hooks=[MetricsHooks(meter_provider=provider)])
    assert 25 == sum(p.value for p in points(reader, "messaging.client.sent.messages"))
    provider.shutdown()


@pytest.mark.parametrize("client", CLIENTS)
def test_a_plugin_given_in_hooks_replaces_the_built_in_one(client: str, bootstrap: str, topic: str) -> None:
    """MetricsHooks in hooks= with tracing="hooks": one set of series, labelled as the application
    chose, not a second one from the built-in plugin."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    mine = MetricsHooks(meter_provider=provider, labels=MetricLabels(broker="host"))
    produce(client, bootstrap, topic, [(b"v", None)] * 10, hooks=[mine], tracing="hooks", meter_provider=provider)
    brokers = {p.attributes["kafkahooks.broker"] for p in points(reader, "kafkahooks.broker.bytes_written")}
    assert brokers
    assert all(":" in b for b in brokers), brokers
    assert 10 == sum(p.value for p in points(reader, "messaging.client.sent.messages"))
    provider.shutdown()


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


def test_a_plugin_that_fails_to_import_leaves_the_client_working(bootstrap: str, topic: str) -> None:
    """tracing="hooks" with the metrics plugin unimportable: the client is built and produces; the
    failure is counted where kafkahooks counts its own errors."""
    done = run_python(
        f"""
import sys
sys.modules["kafkahooks.metrics"] = None
from kafkahooks.kafka import KafkaProducer
from kafkahooks._guard import internal_errors
producer = KafkaProducer(bootstrap_servers="{bootstrap}", tracing="hooks")
producer.send("{topic}", b"v").get(timeout=10)
producer.close()
assert internal_errors.get("plugin.metrics") == 1, internal_errors
"""
    )
    assert 0 == done.returncode, done.stderr[-2000:]


@pytest.mark.parametrize(("module", "extra"), [("aiokafka", "aiokafka"), ("kafka", "kafka-python")])
def test_a_missing_client_names_the_extra_to_install(module: str, extra: str) -> None:
    """Importing a wrapper without its client library says which extra to install."""
    done = run_python(f"import sys; sys.modules[{module!r}] = None; import kafkahooks.{module}")
    assert 0 != done.returncode
    assert f"kafkahooks[{extra}]" in done.stderr.splitlines()[-1]


def test_a_configuration_error_leaves_no_noise_behind(bootstrap: str) -> None:
    """A kafka-python client refused by its own configuration check raises that error, and nothing
    is printed when the half-built object is collected."""
    done = run_python(
        f"""
import gc
from kafkahooks.kafka import KafkaProducer
try:
    KafkaProducer(bootstrap_servers="{bootstrap}", compression_type="bogus")
except Exception as exc:
    print(type(exc).__name__)
gc.collect()
"""
    )
    assert 0 == done.returncode, done.stderr
    assert done.stdout.strip()
    assert "AttributeError" not in done.stderr, done.stderr


def test_aiokafka_consumer_strict_mode_reaches_async_for(bootstrap: str, topic: str) -> None:
    """async for goes through getone: strict mode raises there too."""
    produce("aiokafka", bootstrap, topic, [(b"v", None)] * 3)

    async def run() -> None:
        from aiokafka.structs import TopicPartition

        from kafkahooks.aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", hooks=[FetchBatchFails()], strict_hooks=True
        )
        await consumer.start()
        consumer.assign([TopicPartition(topic, 0)])
        try:
            with pytest.raises(LookupError):
                async for _ in consumer:
                    pass
        finally:
            with contextlib.suppress(LookupError):  # later fetches failed too: stop() reports them
                await consumer.stop()

    asyncio.run(run())


def test_a_tracing_mode_the_adapter_cannot_serve_is_refused() -> None:
    """A client library adapter lists the tracing modes it serves; asking another one fails when
    the client is built, naming the ones it has (both shipped adapters serve every mode)."""
    from kafkahooks._instrument import Instrumentation
    from kafkahooks._wire import aiokafka as _aiokafka
    from kafkahooks._wire import kafka_python as _kafka_python

    class SpansOnly:
        library = "some-client"
        tracing_modes = frozenset({"off", "hooks"})

    with pytest.raises(ValueError, match=r"some-client clients cannot serve tracing='records'.*'hooks', 'off'"):
        Instrumentation.from_kwargs("producer", {"tracing": "records"}, SpansOnly())  # type: ignore[arg-type]
    for adapter in (_aiokafka.ADAPTER, _kafka_python.ADAPTER):
        assert {"off", "hooks", "records"} == adapter.tracing_modes


@pytest.mark.parametrize("path", ["aiokafka/_clients.py", "kafka/_clients.py"])
def test_the_client_classes_touch_no_private_attribute_of_their_library(path: str) -> None:
    """Every private attribute of aiokafka or kafka-python is read inside its adapter (_wire):
    the wrapped classes use only kafkahooks' own (``_kh...``)."""
    import ast
    from pathlib import Path

    import kafkahooks

    tree = ast.parse((Path(kafkahooks.__file__).parent / path).read_text())
    private = [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith(("_kh", "__"))
    ]
    assert [] == private
