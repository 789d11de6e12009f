"""kafkahooks and ddtrace in one fleet: pathways chain across them in both directions, with the
same node hashes (env, cluster id and edge tags as ddtrace makes them) and the origin carried.

The ddtrace side is a real ddtrace-instrumented aiokafka service in a process of its own
(``_ddtrace_peer.py``); both sides send their data-stream stats to Datadog's test agent, and the
assertions read what the agent received.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchMessage
from ddsketch.pb.proto import DDSketchProto

from kafkahooks.datastreams import DatadogAgentExporter, DataStreams, pathway_hash
from tests._drivers import CLIENTS, consume, produce
from tests.interop.conftest import DatadogTestAgent

PEER = Path(__file__).with_name("_ddtrace_peer.py")
AGE_S = 1.5
"""How old each pathway is when the next service reads it."""


@pytest.fixture(autouse=True)
def no_dd_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides pick their env default, as in a fleet that never set DD_ENV."""
    for var in ("DD_ENV", "DD_SERVICE", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(var, raising=False)


def run_ddtrace(agent: DatadogTestAgent, service: str, *args: str, process_tags: bool = True) -> dict[str, Any]:
    """Run the ddtrace-instrumented peer. ``process_tags=False`` turns off what ddtrace 4 mixes into
    its node hashes by default (a hash of the process's entrypoint and container tags), so its
    hashes can be compared with the ones kafkahooks computes; pathways chain either way."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_"))}
    env.update(
        DD_EXPERIMENTAL_PROPAGATE_PROCESS_TAGS_ENABLED=str(process_tags).lower(),
        DD_SERVICE=service,
        DD_DATA_STREAMS_ENABLED="true",
        DD_TRACE_AGENT_URL=agent.url,
        DD_INSTRUMENTATION_TELEMETRY_ENABLED="false",
        DD_REMOTE_CONFIGURATION_ENABLED="false",
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    done = subprocess.run(
        [sys.executable, str(PEER), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert 0 == done.returncode, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def stats_of(agent: DatadogTestAgent, service: str, direction: str) -> list[dict[str, Any]]:
    """The stats groups ``service`` sent to the agent for ``direction:in``/``direction:out``."""
    return [
        group
        for payload in agent.pipeline_stats()
        if payload["Service"] == service
        for bucket in payload["Stats"]
        for group in bucket["Stats"]
        if f"direction:{direction}" in group["EdgeTags"]
    ]


def seconds(sketch_bytes: bytes, quantile: float) -> float:
    message = DDSketchMessage()
    message.ParseFromString(sketch_bytes)
    value: float = DDSketchProto.from_proto(message).get_quantile_value(quantile)
    return value


def cluster_tag(tags: list[str]) -> str:
    (tag,) = [t for t in tags if t.startswith("kafka_cluster_id:")]
    assert len(tag) > len("kafka_cluster_id:")
    return tag


@pytest.mark.parametrize("client", CLIENTS)
def test_a_ddtrace_consumer_continues_a_kafkahooks_pathway(
    client: str, agent: DatadogTestAgent, bootstrap: str, topic: str
) -> None:
    """kafkahooks produces (one record per batch, so each carries the header), ddtrace consumes:
    ddtrace's checkpoint has kafkahooks' produce hash as parent, the hash kafkahooks would
    compute for that service (env "none", the same cluster id tag) and the pathway's origin."""
    streams = DataStreams("kh-checkout", exporters=[DatadogAgentExporter(agent.url)])
    assert "none" == streams.env
    for _ in range(3):  # one record per batch, even on kafka-python (which batches what waits)
        produce(client, bootstrap, topic, [(b"order", None)], data_streams=streams, linger_ms=0)
    streams.flush(final=True)
    time.sleep(AGE_S)
    group = f"dd-ledger-{client}"  # a group of its own: a new member of the last test's waits out its session
    peer = run_ddtrace(agent, "dd-ledger", "consume", bootstrap, topic, "3", group, process_tags=False)
    assert all("dd-pathway-ctx-base64" in headers for headers in peer["headers"])

    ours = agent.wait_for(lambda: stats_of(agent, "kh-checkout", "out"))
    theirs = agent.wait_for(lambda: stats_of(agent, "dd-ledger", "in"))
    assert 1 == len({g["Hash"] for g in ours}), ours
    assert 1 == len({g["Hash"] for g in theirs}), theirs
    produced, consumed = ours[0], theirs[0]
    assert cluster_tag(produced["EdgeTags"]) == cluster_tag(consumed["EdgeTags"])
    assert produced["Hash"] == consumed["ParentHash"]
    expected = pathway_hash("dd-ledger", "none", tuple(sorted(consumed["EdgeTags"])), produced["Hash"])
    assert expected == consumed["Hash"]
    assert seconds(consumed["PathwayLatency"], 0.5) >= AGE_S * 0.9  # the origin travelled


@pytest.mark.parametrize("client", CLIENTS)
def test_kafkahooks_continues_a_ddtrace_pathway(
    client: str, agent: DatadogTestAgent, bootstrap: str, topic: str
) -> None:
    """ddtrace produces (with its default process tags), kafkahooks consumes: ddtrace's produce
    hash is the parent of kafkahooks' consume checkpoint, both carry the same cluster id tag, and
    the pathway latency counts from ddtrace's origin."""
    run_ddtrace(agent, "dd-checkout", "produce", bootstrap, topic, "3")
    time.sleep(AGE_S)
    streams = DataStreams("kh-ledger", exporters=[DatadogAgentExporter(agent.url)])
    group = {"group_id": "kh-ledger-group", "enable_auto_commit": False}
    if client == "kafka-python":
        group.update(session_timeout_ms=6000, heartbeat_interval_ms=1000)
    assert 3 == len(consume(client, bootstrap, topic, 3, data_streams=streams, **group))
    streams.flush(final=True)

    theirs = agent.wait_for(lambda: stats_of(agent, "dd-checkout", "out"))
    ours = agent.wait_for(lambda: stats_of(agent, "kh-ledger", "in"))
    assert 1 == len({g["Hash"] for g in theirs}), theirs
    produced = theirs[0]
    assert ours
    assert all(g["ParentHash"] == produced["Hash"] for g in ours), ours
    assert all(cluster_tag(g["EdgeTags"]) == cluster_tag(produced["EdgeTags"]) for g in ours)
    assert "group:kh-ledger-group" in ours[0]["EdgeTags"]
    assert seconds(ours[0]["PathwayLatency"], 0.5) >= AGE_S * 0.9
