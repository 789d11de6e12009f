"""The kafkahooks command: demo, map and bench, run for real and checked for real output."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kafkahooks.bench import MODES
from kafkahooks.cli import main
from kafkahooks.datastreams import DataStreams, JsonLinesExporter
from kafkahooks.datastreams._map import StreamMap

PIPELINE_EDGES = {
    ("service:checkout", "topic:orders", None),
    ("topic:orders", "service:enricher", "enricher"),
    ("service:enricher", "topic:enriched", None),
    ("topic:enriched", "service:ledger", "ledger"),
}


def write_dump(path: Path) -> None:
    """Checkpoints of a three-service pipeline, made with the real DataStreams API."""
    t0 = 1_700_000_000_000
    checkout, enricher, ledger = (
        DataStreams(name, "test", exporters=[JsonLinesExporter(path)]) for name in ("checkout", "enricher", "ledger")
    )
    for batch in range(20):
        start = t0 + batch * 100
        out = checkout.checkpoint(["direction:out", "topic:orders", "type:kafka"], None, weight=50, now_ms=start)
        got = enricher.checkpoint(
            ["direction:in", "group:enricher", "topic:orders", "type:kafka"], out, weight=50, now_ms=start + 20
        )
        fwd = enricher.checkpoint(["direction:out", "topic:enriched", "type:kafka"], got, weight=50, now_ms=start + 25)
        ledger.checkpoint(
            ["direction:in", "group:ledger", "topic:enriched", "type:kafka"], fwd, weight=50, now_ms=start + 40
        )
    for streams in (checkout, enricher, ledger):
        streams.flush(final=True)


def test_map_renders_nodes_edges_and_latencies(tmp_path: Path) -> None:
    """kafkahooks map draws the pipeline: four edges, message counts, edge and origin latencies."""
    dump = tmp_path / "dump.jsonl"
    write_dump(dump)
    result = CliRunner().invoke(main, ["map", str(dump), "--output", str(tmp_path / "out")])
    assert 0 == result.exit_code, result.output
    stream_map = StreamMap.from_file(dump)
    assert PIPELINE_EDGES == set(stream_map.edges)
    assert {1000} == {e.messages for e in stream_map.edges.values()}
    into_enricher = stream_map.edges[("topic:orders", "service:enricher", "enricher")]
    assert abs(into_enricher.p(0.5) - 0.020) < 0.001
    assert abs(stream_map.nodes["service:ledger"].p(0.99) - 0.040) < 0.001
    page = (tmp_path / "out" / "map.html").read_text()
    assert all(name in page for name in ("checkout", "enricher", "ledger", "[orders]", "[enriched]"))
    assert (tmp_path / "out" / "map.png").stat().st_size > 10_000
    assert "enricher" in result.output


def test_map_refuses_a_dump_without_checkpoints(tmp_path: Path) -> None:
    """An empty or foreign file is an error with a message, not a blank map."""
    dump = tmp_path / "empty.jsonl"
    dump.write_text("not json\n\n")
    result = CliRunner().invoke(main, ["map", str(dump)])
    assert 0 != result.exit_code
    assert "no data-stream checkpoints" in result.output


def test_demo_runs_the_pipeline_and_draws_its_map(tmp_path: Path, bootstrap: str) -> None:
    """kafkahooks demo moves records through three services and maps exactly that pipeline."""
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        main, ["demo", "--bootstrap", bootstrap, "--seconds", "2", "--rate", "500", "--output", str(out)]
    )
    assert 0 == result.exit_code, result.output
    stream_map = StreamMap.from_file(out / "datastreams.jsonl")
    edges = {
        (s.split("-")[0] if s.startswith("topic:") else s, t.split("-")[0] if t.startswith("topic:") else t, g)
        for s, t, g in stream_map.edges
    }
    assert PIPELINE_EDGES == edges
    counts = [e.messages for e in stream_map.edges.values()]
    assert min(counts) > 0
    assert (out / "map.html").exists()
    assert (out / "map.png").stat().st_size > 10_000
    for expected in ("send orders-", "poll enriched-", "process orders-", "data-stream map"):
        assert expected in result.output


def test_bench_runs_every_mode(tmp_path: Path, bootstrap: str) -> None:
    """One tiny round of kafkahooks bench produces a JSON with every mode and a plot."""
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--bootstrap",
            bootstrap,
            "--client",
            "aiokafka",
            "--workload",
            "produce",
            "--rounds",
            "1",
            "--messages",
            "300",
            "--output",
            str(tmp_path),
        ],
    )
    assert 0 == result.exit_code, result.output
    data = json.loads((tmp_path / "throughput.json").read_text())
    assert set(MODES) == {row["mode"] for row in data["summary"]}
    assert all(run["ok"] for run in data["runs"]), [r.get("error") for r in data["runs"] if not r["ok"]]
    assert all(row["ratio_to_bare"] > 0 for row in data["summary"])
    assert {"python", "aiokafka", "kafka-python", "broker", "cpus"} <= set(data["environment"])
    assert (tmp_path / "throughput.png").stat().st_size > 10_000


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_an_unreachable_broker_is_one_line_at_once(command: str) -> None:
    """demo and bench against a port nobody listens on: one line saying so, within seconds."""
    from kafkahooks.broker import free_port

    started = time.monotonic()
    result = CliRunner().invoke(main, [command, "--bootstrap", f"127.0.0.1:{free_port()}"])
    assert 1 == result.exit_code
    assert "no Kafka broker answers at 127.0.0.1:" in result.output
    assert 1 == len(result.output.strip().splitlines())
    assert time.monotonic() - started < 15


def test_bench_skips_a_mode_whose_peer_is_not_installed() -> None:
    """A mode needing a module that is not installed is reported as missing (the CLI skips it
    with one line instead of a traceback per run)."""
    from kafkahooks.bench._modes import MODES, Mode, missing

    assert [] == missing(MODES["otel"], ("aiokafka", "kafka-python"))
    fake = Mode("fake", "", MODES["bare"].setup, needs={"aiokafka": "no_such_module_kafkahooks"})
    assert ["no_such_module_kafkahooks"] == missing(fake, ("aiokafka",))
