"""Both wrapped clients over TLS: the embedded broker behind a TLS-terminating loopback proxy, with
a CA and a certificate the test makes (Tansu 0.6 takes ``--cert`` but its listener still speaks
plaintext, so the proxy terminates TLS, as a load balancer in front of a managed Kafka would)."""

from __future__ import annotations

import contextvars
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kafkahooks.broker import BOOTSTRAP_ENV, EmbeddedBroker, free_port
from kafkahooks.hooks import ApiKey
from kafkahooks.testing import RecordingHook
from tests._drivers import CLIENTS, consume, produce
from tests._proxy import FrameProxy
from tests.test_datastreams import make_streams, points

HANDSHAKE_DELAY_S = 0.2
"""The proxy holds every TLS handshake this long: the connect hooks must account for it."""


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FrameProxy, Path]]:
    """(bootstrap servers, the TLS proxy, the CA's PEM file) for a broker reachable only over TLS."""
    import ssl

    import trustme

    if os.environ.get(BOOTSTRAP_ENV, "").strip():
        pytest.skip("the TLS proxy needs the embedded broker (it must advertise the proxy's port)")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    ca_path = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    broker_port = free_port()
    proxy = FrameProxy(broker_port, tls=server, handshake_delay_s=HANDSHAKE_DELAY_S)
    with EmbeddedBroker(port=broker_port, advertised_port=proxy.port):
        yield f"127.0.0.1:{proxy.port}", proxy, ca_path
    proxy.close()


def tls_options(client: str, ca_path: Path) -> dict[str, Any]:
    """What a user passes to connect over TLS, verifying the broker's certificate against the CA."""
    if client == "kafka-python":
        return {"security_protocol": "SSL", "ssl_cafile": str(ca_path)}
    from aiokafka.helpers import create_ssl_context

    return {"security_protocol": "SSL", "ssl_context": create_ssl_context(cafile=str(ca_path))}


def isolated(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return contextvars.Context().run(fn, *args, **kwargs)


@pytest.mark.parametrize("client", CLIENTS)
def test_hooks_spans_and_checkpoints_over_tls(client: str, tls_broker: tuple[str, FrameProxy, Path]) -> None:
    """Every record delivered through TLS; the hooks' byte counts are the Kafka frames the proxy
    saw inside the TLS records (not the TLS records), each connect's ``init_ns`` covers the TLS
    handshake, and spans and data-stream checkpoints come out as over plaintext."""
    bootstrap, proxy, ca_path = tls_broker
    topic = f"tls-{client}-{time.time_ns()}"
    options = tls_options(client, ca_path)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    (out_streams, out_capture), (in_streams, in_capture) = make_streams("tls-a"), make_streams("tls-b")
    n = 200
    messages = [(b"%d" % i, None) for i in range(n)]

    proxy.reset()
    handshakes = proxy.handshakes
    writer = RecordingHook()

    def send_in_a_span() -> list[Any]:
        with provider.get_tracer("test").start_as_current_span("app"):
            return produce(
                client,
                bootstrap,
                topic,
                messages,
                partitions=1,  # all to partition 0 (the broker may create the topic with more)
                hooks=[writer],
                tracing="hooks",
                tracer_provider=provider,
                data_streams=out_streams,
                linger_ms=5,
                **options,
            )

    assert n == len(isolated(send_in_a_span))
    wire_writes, wire_reads = Counter(proxy.requests()), Counter(proxy.responses())
    hooked_writes = Counter((e.key, e.bytes_written) for e in writer.of("broker_write"))
    hooked_reads = Counter((e.key, e.bytes_read) for e in writer.of("broker_read"))
    connects = writer.of("broker_connect")
    assert connects, "no connect reported"
    assert all(e.err is None and e.init_ns >= HANDSHAKE_DELAY_S * 1e9 for e in connects), [
        (e.init_ns, e.err) for e in connects
    ]
    if client == "kafka-python":
        assert (wire_writes, wire_reads) == (hooked_writes, hooked_reads)
        assert len(connects) == proxy.handshakes - handshakes
    else:
        # As over plaintext (tests/test_aiokafka.py::test_hook_counts_match_the_wire): aiokafka
        # exchanges ApiVersions inside create_conn and bootstraps on a connection it does not keep,
        # before kafkahooks can see them; every other frame is reported, with its exact size.
        unobservable = {ApiKey.API_VERSIONS, ApiKey.METADATA}
        for wire, hooked in ((wire_writes, hooked_writes), (wire_reads, hooked_reads)):
            assert {k: v for k, v in wire.items() if k[0] not in unobservable} == {
                k: v for k, v in hooked.items() if k[0] not in unobservable
            }
            assert not hooked - wire, "a hook reported a frame the wire never carried"
        assert len(connects) == proxy.handshakes - handshakes - 1  # the bootstrap connection

    reader = RecordingHook()
    got = isolated(
        consume,
        client,
        bootstrap,
        topic,
        n,
        hooks=[reader],
        tracing="hooks",
        tracer_provider=provider,
        data_streams=in_streams,
        group_id=f"g-{topic}",
        enable_auto_commit=False,
        **options,
    )
    assert [v for v, _ in messages] == [r.value for r in got]
    fetched = sum(m.num_records for e in reader.of("fetch_batch_read") for m in [e.metrics])
    assert n <= fetched
    assert all(e.err is None and e.init_ns >= HANDSHAKE_DELAY_S * 1e9 for e in reader.of("broker_connect"))

    provider.force_flush()
    spans = exporter.get_finished_spans()
    (app,) = [s for s in spans if s.name == "app"]
    sends = [s for s in spans if s.name == f"send {topic}"]
    polls = [s for s in spans if s.name == f"poll {topic}"]
    assert sends
    assert polls
    assert n == sum(int(s.attributes.get("messaging.batch.message_count", 1)) for s in sends)
    linked = {link.context.span_id for s in polls for link in s.links}
    assert app.context.span_id in linked, "the consumer did not find the producer's context over TLS"
    produce_writes = writer.of("broker_write", ApiKey.PRODUCE)
    assert len(sends) == len(produce_writes)

    out, inbound = points(out_streams, out_capture), points(in_streams, in_capture)
    assert {p.hash for p in out} == {p.parent_hash for p in inbound}
    assert n == sum(p.weight for p in out) == sum(p.weight for p in inbound)
