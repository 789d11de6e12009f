"""Fixtures: a real broker (embedded Tansu, or $KAFKAHOOKS_BOOTSTRAP), unique topics, recorders."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from kafkahooks.broker import BOOTSTRAP_ENV, EmbeddedBroker, kafka_bootstrap

if TYPE_CHECKING:
    from tests._proxy import FrameProxy

GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}
"""kafka-python group consumers join quickly on the test broker only with these."""


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    """Bootstrap servers of the broker shared by the session's tests ($KAFKAHOOKS_BOOTSTRAP or embedded)."""
    with kafka_bootstrap() as servers:
        yield servers


@pytest.fixture(scope="session")
def cluster_id(bootstrap: str) -> str:
    """The broker's cluster id, as its Metadata responses carry it."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        found: str = admin.describe_cluster()["cluster_id"]
    finally:
        admin.close()
    assert found
    return found


@pytest.fixture
def make_topic(bootstrap: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Create uniquely named topics on the shared broker: ``make_topic(partitions=1)``."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    base = re.sub(r"[^a-zA-Z0-9]", "-", request.node.name)[:60]

    def make(partitions: int = 1) -> str:
        name = f"{base}-{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(name, partitions, 1)])
        return name

    yield make
    admin.close()


@pytest.fixture
def topic(make_topic: Callable[..., str]) -> str:
    """A fresh single-partition topic."""
    return make_topic(1)


@pytest.fixture(scope="module")
def proxied() -> Iterator[tuple[str, FrameProxy]]:
    """A broker reachable only through a frame-recording proxy: (bootstrap servers, proxy)."""
    from kafkahooks.broker import free_port
    from tests._proxy import FrameProxy

    if os.environ.get(BOOTSTRAP_ENV, "").strip():
        pytest.skip("the frame proxy needs the embedded broker (it must advertise the proxy's port)")
    broker_port = free_port()
    proxy = FrameProxy(broker_port)
    with EmbeddedBroker(port=broker_port, advertised_port=proxy.port):
        yield f"127.0.0.1:{proxy.port}", proxy
    proxy.close()


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, to stop or kill."""
    if os.environ.get(BOOTSTRAP_ENV, "").strip():
        pytest.skip("fault tests stop the broker, so they need the embedded one")
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(autouse=True)
def no_current_pathway() -> Iterator[None]:
    """Consuming with data streams on sets the thread's current pathway; no test inherits another's."""
    from kafkahooks.datastreams import reset_pathway, set_pathway

    token = set_pathway(None)
    yield
    reset_pathway(token)
