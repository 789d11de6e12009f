"""The kafkahooks command: demo, map and bench, run for real and checked for real output."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from kafkahooks.bench import MODES
from kafkahooks.cli import main
from kafkahooks.datastreams import DataStreams, JsonLinesExporter
from kafkahooks.datastreams._map import StreamMap

SERVICES = ("checkout", "enricher", "ledger")
ORDERS, ENRICHED = "orders", "enriched"
PIPELINE_EDGES = {
    ("service:checkout", "topic:orders", None),
    ("topic:orders", "service:enricher", "enricher"),
    ("service:enricher", "topic:enriched", None),
    ("topic:enriched", "service:ledger", "ledger"),
}


def write_dump(path: Path, per_service: bool = False, names: tuple[str, str, str] = SERVICES) -> list[Path]:
    """Checkpoints of a three-service pipeline (100-byte payloads, 1 000 messages per edge), made
    with the real DataStreams API: into one dump, or one per service (``path`` is then a
    directory); the enricher's group is 7 and 3 records behind on its two partitions."""
    t0 = 1_700_000_000_000
    paths = [path / f"{name}.jsonl" for name in names] if per_service else [path] * 3
    checkout, enricher, ledger = (
        DataStreams(name, "test", exporters=[JsonLinesExporter(out)]) for name, out in zip(names, paths, strict=True)
    )
    orders, enriched = ORDERS, ENRICHED
    for batch in range(20):
        start = t0 + batch * 100
        out = checkout.checkpoint(
            ["direction:out", f"topic:{orders}", "type:kafka"], None, weight=50, payload_bytes=100.0, now_ms=start
        )
        got = enricher.checkpoint(
            ["direction:in", f"group:{names[1]}", f"topic:{orders}", "type:kafka"],
            out,
            weight=50,
            payload_bytes=100.0,
            now_ms=start + 20,
        )
        fwd = enricher.checkpoint(
            ["direction:out", f"topic:{enriched}", "type:kafka"], got, weight=50, payload_bytes=100.0, now_ms=start + 25
        )
        ledger.checkpoint(
            ["direction:in", f"group:{names[2]}", f"topic:{enriched}", "type:kafka"],
            fwd,
            weight=50,
            payload_bytes=100.0,
            now_ms=start + 40,
        )
    for partition, (records, seconds) in enumerate(((7, 1.5), (3, 0.5))):
        tags = (f"consumer_group:{names[1]}", f"partition:{partition}", f"topic:{orders}", "type:kafka_lag")
        enricher.lag(tags, records, seconds)
    for streams in (checkout, enricher, ledger):
        streams.flush(final=True)
    return sorted(set(paths))


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


def test_map_merges_one_dump_per_service_with_throughput_and_lag(tmp_path: Path) -> None:
    """Three dumps, one per service, make the same map as one dump: every edge, its throughput
    over the window (1 000 messages of 100 bytes in one 10-second bucket), and the enricher's lag
    summed over its partitions (7 + 3 records, the larger time lag)."""
    dumps = write_dump(tmp_path, per_service=True)
    assert 3 == len(dumps)
    result = CliRunner().invoke(main, ["map", *map(str, dumps), "--output", str(tmp_path / "out")])
    assert 0 == result.exit_code, result.output
    merged = StreamMap.from_files(dumps)
    assert PIPELINE_EDGES == set(merged.edges)
    assert {"checkout", "enricher", "ledger"} == merged.services
    assert 10.0 == merged.window_s
    edge = merged.edges[("topic:orders", "service:enricher", "enricher")]
    assert (100.0, 10_000.0) == (merged.rate(edge.messages), merged.rate(edge.payload_bytes))
    assert (10, 1.5) == (edge.lag_records, edge.lag_seconds)
    assert None is merged.edges[("topic:enriched", "service:ledger", "ledger")].lag_records
    assert "lag 10 records · 1.5 s" in merged.edge_lines(edge)
    page = (tmp_path / "out" / "map.html").read_text()
    assert "100 msg/s" in page
    assert "Fan-in" in page


def text_box(element: ET.Element) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) a text element takes, from its font size and length (generous)."""
    size = float(element.get("font-size", "12"))
    width = len(element.text or "") * size * 0.62
    x, y = float(element.get("x", "0")), float(element.get("y", "0"))
    left = {"middle": x - width / 2, "end": x - width}.get(element.get("text-anchor", ""), x)
    return left, y - size, left + width, y + size * 0.25


@pytest.mark.parametrize("names", [SERVICES, ("checkout-service-of-the-payments-team-eu-west", "e", "l")])
def test_the_map_drawing_keeps_every_label_inside(names: tuple[str, str, str], tmp_path: Path) -> None:
    """No text leaves the drawing, and every node's text stays inside its box, even with long
    service names (the layout sizes boxes and columns to their labels)."""
    stream_map = StreamMap.from_files(write_dump(tmp_path, per_service=True, names=names))
    svg = ET.fromstring(stream_map.render_svg())
    width, height = float(svg.get("width", "0")), float(svg.get("height", "0"))
    ns = "{http://www.w3.org/2000/svg}"
    boxes = {r.get("data-node"): r for r in svg.iter(f"{ns}rect")}
    texts = list(svg.iter(f"{ns}text"))
    assert len(texts) >= 3 * len(stream_map.edges)
    for text in texts:
        left, top, right, bottom = text_box(text)
        assert 0 <= left <= right <= width, (text.text, width)
        assert 0 <= top <= bottom <= height, (text.text, height)
        node = text.get("data-node")
        if node is not None:
            rect = boxes[node]
            x, y = float(rect.get("x", "0")), float(rect.get("y", "0"))
            w, h = float(rect.get("width", "0")), float(rect.get("height", "0"))
            assert x <= left <= right <= x + w, (text.text, node)
            assert y <= top <= bottom <= y + h, (text.text, node)


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
    """One tiny round of kafkahooks bench, every mode asked for (the mixed-fleet ones are not in a
    default run), produces a JSON with every mode and a plot."""
    result = CliRunner().invoke(
        main,
        [
            "bench",
            *(arg for mode in MODES for arg in ("--mode", mode)),
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


def test_demo_imports_its_clients_before_starting_service_threads() -> None:
    """The demo's services run in threads; importing aiokafka in two of them at once could fail
    with importlib's _DeadlockError (seen as "checkout sent 0 records", 1 run in 12). Loading the
    demo loads every client module its services use, on the loading thread."""
    code = (
        "import sys, kafkahooks.cli._demo; "
        "print(all(m in sys.modules for m in ('aiokafka.structs', 'kafkahooks.aiokafka', 'kafkahooks.kafka', 'kafka')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "True" == out.stdout.strip()


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


def test_bench_skips_a_mode_for_the_other_client(bootstrap: str) -> None:
    """ddtrace instruments aiokafka only: asked for kafka-python alone, the mode is skipped with
    one line, and nothing is left to run."""
    result = CliRunner().invoke(
        main, ["bench", "--bootstrap", bootstrap, "--client", "kafka-python", "--mode", "ddtrace"]
    )
    assert 1 == result.exit_code
    assert "skipping mode ddtrace: not for kafka-python" in result.output
    assert "no benchmark mode left to run" in result.output


def test_bench_skips_a_mode_whose_peer_is_not_installed() -> None:
    """A mode needing a module that is not installed is reported as missing (the CLI skips it
    with one line instead of a traceback per run)."""
    from kafkahooks.bench._modes import MODES, Mode, missing

    assert [] == missing(MODES["otel"], ("aiokafka", "kafka-python"))
    fake = Mode("fake", "", MODES["bare"].setup, needs={"aiokafka": "no_such_module_kafkahooks"})
    assert ["no_such_module_kafkahooks"] == missing(fake, ("aiokafka",))
