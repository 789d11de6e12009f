"""Structured logs from the hooks: the right events, once, and never a secret."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import kafka
import pytest
import structlog
from structlog.testing import capture_logs

from kafkahooks.broker import free_port
from kafkahooks.kafka import KafkaConsumer, KafkaProducer
from kafkahooks.logs import LogHooks
from tests._drivers import produce

PASSWORD = "CANARY-PASSWORD-7f3a"
HEADER_VALUE = b"CANARY-HEADER-91c2"
RECORD_KEY = b"CANARY-KEY-55de"


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


@pytest.fixture
def stdlib_structlog() -> Iterator[None]:
    """structlog routed to stdlib logging, as many applications configure it."""
    structlog.configure(
        processors=[structlog.stdlib.add_log_level, structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    yield
    structlog.reset_defaults()


def test_connect_failures_are_logged_once_per_interval() -> None:
    """Many failed connection attempts to a dead port give one broker_connect_failed line."""
    dead = f"127.0.0.1:{free_port()}"
    with capture_logs() as logs:
        consumer = KafkaConsumer(
            bootstrap_servers=dead,
            hooks=[LogHooks()],
            api_version=(2, 5),
            reconnect_backoff_ms=50,
            reconnect_backoff_max_ms=100,
        )
        consumer.assign([kafka.TopicPartition("t", 0)])
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)
        consumer.close()
    failed = events(logs, "broker_connect_failed")
    assert 1 == len(failed)
    assert ("seed_0", "warning") == (failed[0]["broker"], failed[0]["log_level"])
    assert "error_type" in failed[0]


def test_connections_and_sampled_requests_carry_context_not_payloads(bootstrap: str, topic: str) -> None:
    """Connected/disconnected once per broker; sampled debug lines have timings and names but no
    record key, value or header value."""
    with capture_logs() as logs:
        produce(
            "kafka-python",
            bootstrap,
            topic,
            [(b"value", [("h", HEADER_VALUE)])] * 5,
            hooks=[LogHooks(sample_every=1)],
            client_id="logged-producer",
        )
    connected = events(logs, "broker_connected")
    assert len({e["broker"] for e in connected}) == len(connected) > 0
    assert all("logged-producer" == e["client_id"] for e in connected)
    requests = events(logs, "broker_request")
    assert {"Produce", "Metadata"} <= {e["key"] for e in requests}
    assert all(e["log_level"] == "debug" for e in requests)
    text = repr(logs)
    assert HEADER_VALUE.decode() not in text
    assert "value" not in {k for e in requests for k in e}


def test_sasl_password_never_appears(bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    """A SASL password in the client configuration reaches no log line, ours or the failure's."""
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            hooks=[LogHooks(sample_every=1)],
            api_version=(2, 5),
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_plain_username="user",
            sasl_plain_password=PASSWORD,
            max_block_ms=1500,
            reconnect_backoff_ms=50,
        )
        with pytest.raises(kafka.errors.KafkaError):
            producer.send("t", key=RECORD_KEY, value=b"v", headers=[("h", HEADER_VALUE)]).get(timeout=3)
        producer.close(timeout=1)
    ours = [e for e in logs if e["event"].startswith("broker_")]
    assert ours, "the failing SASL handshake should have been logged"
    for canary in (PASSWORD, HEADER_VALUE.decode(), RECORD_KEY.decode()):
        assert canary not in repr(logs)
        assert canary not in caplog.text


def test_logs_reach_stdlib_logging(
    stdlib_structlog: None, bootstrap: str, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With structlog configured for stdlib, kafkahooks' events arrive as ordinary log records."""
    caplog.set_level(logging.INFO, logger="kafkahooks.logs")
    produce("kafka-python", bootstrap, topic, [(b"v", None)], hooks=[LogHooks()])
    assert any("broker_connected" in r.getMessage() and r.name == "kafkahooks.logs" for r in caplog.records)
