"""The kafkahooks command: demo, map and bench, run for real and checked for real output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kafkahooks.bench import MODES
from kafkahooks.bench._ablations import ABLATION_MODES
from kafkahooks.cli import main
from kafkahooks.datastreams import DataStreams, JsonLinesExporter
from kafkahooks.datastreams._map import StreamMap
from kafkahooks.datastreams._render import render_svg


@pytest.fixture(autouse=True)
def _pipe_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command's output as a pipe gets it (160 columns), whatever ``$COLUMNS`` the shell
    running the tests exports: with ``COLUMNS=80`` the tables were cut and the names these tests
    look for were ellipsized. The tests of ``$COLUMNS`` itself set it per command."""
    monkeypatch.delenv("COLUMNS", raising=False)


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
    over the time its traffic spans (1 000 messages of 100 bytes in 20 checkpoints 100 ms apart:
    1.9 s, not the 10-second bucket), and the enricher's lag summed over its partitions (7 + 3
    records, the larger time lag)."""
    dumps = write_dump(tmp_path, per_service=True)
    assert 3 == len(dumps)
    result = CliRunner().invoke(main, ["map", *map(str, dumps), "--output", str(tmp_path / "out")])
    assert 0 == result.exit_code, result.output
    merged = StreamMap.from_files(dumps)
    assert PIPELINE_EDGES == set(merged.edges)
    assert {"checkout", "enricher", "ledger"} == merged.services
    assert 10.0 == merged.window_s
    edge = merged.edges[("topic:orders", "service:enricher", "enricher")]
    assert 1.9 == edge.active_s
    assert (1000 / 1.9, 100_000 / 1.9) == (merged.rate(edge.messages, edge), merged.rate(edge.payload_bytes, edge))
    assert (10, 1.5) == (edge.lag_records, edge.lag_seconds)
    assert None is merged.edges[("topic:enriched", "service:ledger", "ledger")].lag_records
    assert "lag 10 records · 1.5 s" in merged.edge_lines(edge)
    page = (tmp_path / "out" / "map.html").read_text()
    assert "526 msg/s" in page
    assert "Fan-in" in page
    assert "(1.9 s)" in merged.window_text()


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
    svg = ET.fromstring(render_svg(stream_map))
    width, height = float(svg.get("width", "0")), float(svg.get("height", "0"))
    ns = "{http://www.w3.org/2000/svg}"
    texts = list(svg.iter(f"{ns}text"))
    assert len(texts) >= 2 * len(stream_map.edges)
    for text in texts:
        left, top, right, bottom = text_box(text)
        assert 0 <= left <= right <= width, (text.text, width)
        assert 0 <= top <= bottom <= height, (text.text, height)
    nodes = [g for g in svg.iter(f"{ns}g") if g.get("data-node")]
    assert len(stream_map.nodes) == len(nodes)
    for node in nodes:
        rect = node.find(f"{ns}rect")
        assert rect is not None
        x, y = float(rect.get("x", "0")), float(rect.get("y", "0"))
        w, h = float(rect.get("width", "0")), float(rect.get("height", "0"))
        for text in node.iter(f"{ns}text"):
            left, top, right, bottom = text_box(text)
            assert x <= left <= right <= x + w, (text.text, node.get("data-node"))
            assert y <= top <= bottom <= y + h, (text.text, node.get("data-node"))


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
        main, ["demo", "--bootstrap", bootstrap, "--seconds", "2", "--rate", "2000", "--output", str(out)]
    )
    assert 0 == result.exit_code, result.output
    found = re.search(r"checkout sent ([\d,]+) records", result.output)
    assert found is not None, result.output
    sent = int(found.group(1).replace(",", ""))
    assert 3_600 <= sent <= 4_400, sent  # the rate asked for, 2 000/s for 2 s (not 12% short of it)
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
    for expected in ("send orders-", "poll enriched-", "process orders-", "data-stream map", "Verdicts"):
        assert expected in result.output
    assert "Produce to broker" in result.output
    dumps = {p.name for p in out.glob("requests-*.jsonl")}
    expected_dumps = {"checkout-producer", "enricher-consumer", "enricher-producer", "ledger-consumer"}
    assert {f"requests-{name}.jsonl" for name in expected_dumps} == dumps


RUN_MODES = [name for name in MODES if name not in ABLATION_MODES]
"""Every mode but the ablations (``tests/test_ablations.py`` runs one through the bench)."""


def test_bench_runs_every_mode(tmp_path: Path, bootstrap: str) -> None:
    """One tiny round of kafkahooks bench, every mode asked for (the mixed-fleet ones are not in a
    default run; the ablations aside), produces a JSON with every mode and a plot."""
    result = CliRunner().invoke(
        main,
        [
            "bench",
            *(arg for mode in RUN_MODES for arg in ("--mode", mode)),
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
    assert set(RUN_MODES) == {row["mode"] for row in data["summary"]}
    assert all(run["ok"] for run in data["runs"]), [r.get("error") for r in data["runs"] if not r["ok"]]
    assert all(row["ratio_to_bare"] > 0 for row in data["summary"])
    if sys.platform.startswith("linux"):  # the application thread's kernel time and page faults
        for run in data["runs"]:
            assert run["main_sys_us_per_msg"] >= 0, run
            assert run["main_minor_faults_per_kmsg"] >= 0, run
            assert run["main_sys_us_per_msg"] <= run["main_cpu_us_per_msg"] + 1, run  # a part of it
        assert all(row["main_sys_us_per_msg"] is not None for row in data["summary"])
    assert {"python", "aiokafka", "kafka-python", "broker", "cpus"} <= set(data["environment"])
    assert data["environment"]["heap"].startswith("steady: ")
    assert (tmp_path / "throughput.png").stat().st_size > 10_000


_READS_LIKE_ASYNCIO = """
import resource, socket
a, b = socket.socketpair()
held = []
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(2000):
    a.send(b"x" * 3000)
    b.recv(262144)  # asyncio's selector transport reads each response into a 256 KiB buffer
    held.append(bytearray(20000))  # and the client keeps a few batches' worth of memory
    del held[:-3]
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or __import__("platform").libc_ver()[0] != "glibc", reason="glibc's malloc"
)
def test_bench_workers_keep_a_steady_heap() -> None:
    """The workers' environment (--steady-heap, the default) stops glibc from handing a response
    buffer's memory back to the kernel and faulting it in again on every read, as it does with
    its defaults; --glibc-heap leaves the environment alone; values the caller set are kept."""
    from kafkahooks.bench._runner import STEADY_HEAP, heap_note, worker_env

    clean = {k: v for k, v in os.environ.items() if k not in STEADY_HEAP}

    def faults(env: dict[str, str]) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _READS_LIKE_ASYNCIO], env=env, capture_output=True, text=True, timeout=60, check=True
        )
        return int(out.stdout)

    assert worker_env(False) is None
    steady = worker_env(True)
    assert steady is not None
    assert STEADY_HEAP.items() <= steady.items()
    glibc_defaults = faults(clean)
    assert glibc_defaults > 1_000  # about two per read
    assert faults({**clean, **STEADY_HEAP}) < glibc_defaults / 4
    assert heap_note(True).startswith("steady: MALLOC_MMAP_THRESHOLD_=")
    assert heap_note(False).startswith("glibc defaults")
    os.environ["MALLOC_TRIM_THRESHOLD_"] = "1"
    try:
        assert "1" == (worker_env(True) or {})["MALLOC_TRIM_THRESHOLD_"]
        assert "MALLOC_TRIM_THRESHOLD_=1" in heap_note(True)
    finally:
        del os.environ["MALLOC_TRIM_THRESHOLD_"]


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


def test_the_map_rates_an_edge_over_its_own_traffic(tmp_path: Path) -> None:
    """A producer sending 8 820 records over 5 s, whose checkpoints land in two 10-second buckets,
    is shown at 1 764 msg/s (8 820 over the 5 s between its first and last checkpoint), not at
    441 msg/s over the 20 s of the buckets; the window shown is that traffic's."""
    dump = tmp_path / "dump.jsonl"
    streams = DataStreams("checkout", "test", exporters=[JsonLinesExporter(dump)])
    t0 = 1_700_000_008_000  # two seconds before a 10-second boundary
    tags = ["direction:out", "topic:orders", "type:kafka"]
    for i in range(21):  # every 250 ms for 5 s
        streams.checkpoint(tags, None, weight=420, payload_bytes=100.0, now_ms=t0 + i * 250)
    streams.flush(final=True)
    stream_map = StreamMap.from_file(dump)
    assert 20.0 == stream_map.window_s  # the buckets
    (edge,) = stream_map.edges.values()
    assert (8_820, 5.0) == (edge.messages, edge.active_s)
    assert 1_764.0 == stream_map.rate(edge.messages, edge)
    assert "1.8k msg/s" in stream_map.edge_lines(edge)[0]
    assert "(5.0 s)" in stream_map.window_text()
    result = CliRunner().invoke(main, ["map", str(dump), "--output", str(tmp_path / "out")])
    assert 0 == result.exit_code, result.output
    assert "1.8k" in result.output
    assert "441" not in result.output


def test_an_old_dump_without_checkpoint_times_is_rated_over_its_buckets(tmp_path: Path) -> None:
    """Dumps written before checkpoint times were exported still read: rates over the buckets."""
    dump = tmp_path / "old.jsonl"
    write_dump(dump)
    lines = [json.loads(line) for line in dump.read_text().splitlines()]
    for line in lines:
        line.pop("first_ns", None)
        line.pop("last_ns", None)
    dump.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    stream_map = StreamMap.from_file(dump)
    edge = stream_map.edges[("topic:orders", "service:enricher", "enricher")]
    assert None is edge.active_s
    assert 100.0 == stream_map.rate(edge.messages, edge)


def run_cli_without(modules: tuple[str, ...], *args: str, env: dict[str, str] | None = None) -> Any:
    """The kafkahooks command in a fresh process where ``modules`` cannot be imported, as in an
    environment without the extra that installs them."""
    code = (
        "import sys\n"
        f"for name in {modules!r}:\n"
        "    sys.modules[name] = None\n"
        "from kafkahooks.cli import main\n"
        f"sys.argv = ['kafkahooks', *{list(args)!r}]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_bench_skips_a_peer_whose_parent_package_is_missing() -> None:
    """In the environment the demo's install builds, OpenTelemetry's instrumentation package is
    missing altogether: the peer is skipped with one line naming the extra, not a traceback."""
    result = run_cli_without(("opentelemetry.instrumentation",), "bench", "--client", "aiokafka", "--mode", "otel")
    assert 1 == result.returncode
    assert "Traceback" not in result.stderr
    assert (
        "skipping mode otel: needs opentelemetry.instrumentation.aiokafka (pip install 'kafkahooks[bench]')"
        in result.stderr
    )
    assert "no benchmark mode left to run" in result.stderr


@pytest.mark.parametrize(("hidden", "extra"), [("kafka", "kafka-python"), ("aiokafka", "aiokafka")])
def test_demo_without_a_client_says_which_extra_in_one_line(hidden: str, extra: str) -> None:
    """kafkahooks demo without one of the clients: one line naming the extra that installs it."""
    result = run_cli_without((hidden,), "demo", "--bootstrap", "127.0.0.1:1")
    assert 1 == result.returncode
    assert "Traceback" not in result.stderr
    assert f"pip install 'kafkahooks[{extra}]'" in result.stderr
    assert 1 == len(result.stderr.strip().splitlines()), result.stderr


def test_map_without_matplotlib_writes_the_html_and_says_what_draws_the_png(tmp_path: Path) -> None:
    """Without matplotlib the map's HTML is written, and one line says the PNG needs [plot]."""
    dump = tmp_path / "dump.jsonl"
    write_dump(dump)
    result = run_cli_without(("matplotlib",), "map", str(dump), "--output", str(tmp_path / "out"))
    assert 0 == result.returncode, result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "out" / "map.html").exists()
    assert not (tmp_path / "out" / "map.png").exists()
    assert "map.png needs matplotlib: pip install 'kafkahooks[plot]'" in result.stderr


def test_map_into_a_directory_it_cannot_write_is_one_line(tmp_path: Path) -> None:
    """An output directory that cannot be made is said in one line, without a traceback."""
    dump = tmp_path / "dump.jsonl"
    write_dump(dump)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["map", str(dump), "--output", str(blocker / "out")])
    assert 1 == result.exit_code
    assert f"cannot write the map to {blocker / 'out'}" in result.output
    assert "Traceback" not in result.output


def test_map_tables_in_a_pipe_keep_every_number_and_name(tmp_path: Path) -> None:
    """Written to a pipe (no terminal), the map's table is 160 columns wide and keeps every figure
    whole, long labels wrapping instead of being cut; with $COLUMNS set, as wide as it says (the
    long names then fit on their lines)."""
    names = ("checkout-service-of-the-payments-team-eu-west-1", "enricher-of-orders-for-the-ledger", "ledger")
    dumps = write_dump(tmp_path, per_service=True, names=names)
    command = [str(Path(sys.executable).parent / "kafkahooks"), "map", *map(str, dumps), "--output", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert 0 == piped.returncode, piped.stderr
    table = [line for line in piped.stdout.splitlines() if "│" in line]
    assert table
    assert 160 == max(len(line) for line in table)
    assert "…" not in piped.stdout
    assert 4 == sum(" 1,000 " in line for line in table)  # every edge's message count, whole
    wide = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env={**env, "COLUMNS": "300"}
    )
    assert 0 == wide.returncode, wide.stderr
    for name in names:
        assert name in wide.stdout


def test_the_bench_runs_kafka_python_with_its_compiled_checksum() -> None:
    """The bench extra installs kafka-python's ``crc32c`` extra, kafka-python checksums with it
    (not in pure Python, about 70% of a ``poll`` consumer's CPU), and the environment recorded
    with the figures says which checksum they were measured with."""
    from kafka.record import util

    from kafkahooks.bench._runner import environment, kafka_python_checksum

    assert util._crc32c is not util.crc32c_py
    assert environment(None)["kafka-python-crc32c"].endswith("(compiled)")
    assert "pure Python" == kafka_python_checksum(None)


@pytest.mark.parametrize(
    "modes",
    [
        [("off", 0.99, 1.01), ("dsm", 0.97, 1.04), ("hooks", 1.0, 1.0), ("records", 0.2, 6.0)],
        # The run of record's kafka-python poll panel: eight modes, two at 1.00 or more both ways.
        [
            ("off", 0.99, 1.01),
            ("hooks", 0.97, 1.04),
            ("hooks-1pct", 0.94, 1.06),
            ("hooks-stuck", 1.0, 1.0),
            ("dsm", 0.97, 1.03),
            ("records", 0.19, 5.3),
            ("otel", 1.01, 1.0),
            ("otel-1pct", 1.02, 0.99),
        ],
    ],
    ids=["four-modes", "eight-modes"],
)
def test_bench_plot_labels_do_not_overlap(modes: list[tuple[str, float, float]]) -> None:
    """Every figure the benchmark's plot writes beside its bars is readable: no two labels of a
    panel overlap (bare, 1 by definition, is named in the panel title instead of drawn)."""
    from kafkahooks.bench import Results
    from kafkahooks.bench._plot import figure

    runs = []
    for pair, (mode, rate, cpu) in enumerate(modes):
        for side, r, c in (("bare", 1.0, 1.0), (mode, rate, cpu)):
            runs.append(
                {
                    "client": "aiokafka",
                    "workload": "produce",
                    "mode": side,
                    "pair": pair,
                    "round": 0,
                    "ok": True,
                    "msgs_per_s": 150_000 * r,
                    "cpu_us_per_msg": 7.0 * c,
                    "peak_rss_mb": 40.0,
                }
            )
    results = Results(
        config={"modes": ["bare", *(mode for mode, _, _ in modes)], "rounds": 1},
        environment={"kafkahooks": "test", "python": "3", "cpus": 2},
        runs=runs,
    )
    fig = figure(results)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    for ax in fig.axes:
        boxes = [text.get_window_extent(renderer) for text in ax.texts]
        assert len(boxes) == 2 * len(modes)  # a throughput and a CPU label per mode
        overlapping = [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
        assert [] == overlapping, [ax.texts[i].get_text() for pair in overlapping for i in pair]
        assert "bare 150k msg/s" in ax.get_title()


def test_bench_per_request_reads_back_the_records_each_request_carried(tmp_path: Path, bootstrap: str) -> None:
    """--batch-records 10: batches fitted to 10 records, read back from the broker (bare and mode
    alike), and the extra CPU per request written with its plot."""
    result = CliRunner().invoke(
        main,
        [
            "bench", "--bootstrap", bootstrap, "--client", "aiokafka", "--mode", "dsm", "--batch-records", "10",
            "--rounds", "1", "--messages", "300", "--output", str(tmp_path),
        ],
    )  # fmt: skip
    assert 0 == result.exit_code, result.output
    data = json.loads((tmp_path / "per-request.json").read_text())
    (row,) = data["summary"]
    assert ("aiokafka", "dsm", 10) == (row["client"], row["mode"], row["batch_records"])
    assert abs(row["records_per_request"] - 10) < 0.5  # one lone warm-up record aside
    assert all(abs(run["records_per_request"] - 10) < 0.5 for run in data["runs"]["10"])
    assert (tmp_path / "per-request.png").stat().st_size > 10_000


def test_bench_per_batch_for_consumers_reads_a_topic_of_fitted_batches(tmp_path: Path, bootstrap: str) -> None:
    """--batch-records with a consume workload: the consumers read a topic written in batches of
    that many records (read back from the broker), and the figures are per fetched batch, beside
    the produce workload's per request when both are asked."""
    result = CliRunner().invoke(
        main,
        [
            "bench", "--bootstrap", bootstrap, "--client", "aiokafka", "--workload", "produce",
            "--workload", "consume-batch", "--mode", "dsm", "--batch-records", "10", "--rounds", "1",
            "--messages", "300", "--output", str(tmp_path),
        ],
    )  # fmt: skip
    assert 0 == result.exit_code, result.output
    data = json.loads((tmp_path / "per-request.json").read_text())
    rows = {row["workload"]: row for row in data["summary"]}
    assert {"produce", "consume-batch"} == set(rows)
    assert ("Produce request", "fetched batch") == (rows["produce"]["per"], rows["consume-batch"]["per"])
    consumed = [r for r in data["runs"]["10"] if r["workload"] == "consume-batch"]
    assert consumed
    assert all(abs(r["records_per_batch"] - 10) < 0.5 for r in consumed)
    assert abs(rows["consume-batch"]["records_per_request"] - 10) < 0.5
    assert (tmp_path / "per-request.png").stat().st_size > 10_000


def test_a_per_request_file_from_before_consume_workloads_still_draws(tmp_path: Path) -> None:
    """A per-request file written before consume workloads had rows (no ``workload`` in them, as
    the one of record until 2026-12-07) still draws, as the produce workload's: the same panels
    as the file of record's own rows."""
    import matplotlib.pyplot as plt

    from kafkahooks.bench._plot import per_request_figure, plot_per_request

    data = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/per-request.json").read_text())
    assert {"produce"} == {row["workload"] for row in data["summary"]}
    older = [{k: v for k, v in row.items() if k != "workload"} for row in data["summary"]]
    out = plot_per_request(older, data["environment"], tmp_path / "per-request.png")
    assert out.stat().st_size > 10_000

    def titles(rows: list[dict[str, object]]) -> list[str]:
        fig = per_request_figure(rows, data["environment"])
        try:
            return [ax.get_title(loc="left") for ax in fig.axes]
        finally:
            plt.close(fig)

    assert titles(older) == titles(data["summary"]) == ["produce", ""]


def test_bench_interleaved_method_still_runs(tmp_path: Path, bootstrap: str) -> None:
    """--method interleaved (both sides in one process, the diagnostic) measures both sides and
    says so in the results."""
    result = CliRunner().invoke(
        main,
        [
            "bench", "--bootstrap", bootstrap, "--client", "aiokafka", "--workload", "produce", "--mode", "hooks",
            "--method", "interleaved", "--glibc-heap", "--rounds", "1", "--messages", "300",
            "--output", str(tmp_path),
        ],
    )  # fmt: skip
    assert 0 == result.exit_code, result.output
    data = json.loads((tmp_path / "throughput.json").read_text())
    assert "interleaved" in data["environment"]["method"]
    assert data["environment"]["heap"].startswith("glibc defaults")
    assert {"bare", "hooks"} == {run["mode"] for run in data["runs"] if run["ok"]}


def test_bench_export_interval_reaches_the_modes_process(tmp_path: Path, bootstrap: str) -> None:
    """--export-interval sets how often the mode's export worker passes, in the mode's own
    process: at 10 ms a run of a few tenths of a second makes tens of passes, each run records
    its count, and the configuration says what was asked."""
    result = CliRunner().invoke(
        main,
        [
            "bench", "--bootstrap", bootstrap, "--client", "aiokafka", "--workload", "produce", "--mode", "dsm",
            "--rounds", "1", "--messages", "20000", "--export-interval", "0.01", "--output", str(tmp_path),
        ],
    )  # fmt: skip
    assert 0 == result.exit_code, result.output
    data = json.loads((tmp_path / "throughput.json").read_text())
    assert 0.01 == data["config"]["export_interval_s"]
    (run,) = [r for r in data["runs"] if r["mode"] == "dsm"]
    # Passes continue while the bare side runs its chunks, so they outnumber the mode's own time.
    assert run["export_passes"] >= max(5, 0.5 * run["seconds"] / 0.01), run
    assert all("export_passes" not in r for r in data["runs"] if r["mode"] == "bare")


def test_bench_compression_reaches_the_consume_workloads_topic(bootstrap: str) -> None:
    """--compression compresses what the consume workloads read too, not only what the produce
    workload sends: the topic the bench fills holds zstd batches of every message (and warm-ups)."""
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    from kafkahooks.bench._runner import BenchConfig, _fill
    from kafkahooks.hooks import Compression
    from kafkahooks.kafka import KafkaConsumer
    from kafkahooks.testing import RecordingHook
    from tests._drivers import iterate_to_end

    config = BenchConfig(compression="zstd", messages=400, chunk=50)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        topic = _fill(admin, bootstrap, config, "aiokafka", "consume-batch")
    finally:
        admin.close()
    recorder = RecordingHook()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=3000, hooks=[recorder]
    )
    consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
    try:
        got = len(iterate_to_end(consumer))
    finally:
        consumer.close()
    assert 500 == got
    batches = recorder.of("fetch_batch_read")
    assert 500 == sum(e.metrics.num_records for e in batches)
    assert {Compression.ZSTD} == {e.metrics.compression for e in batches}


def test_the_per_size_legend_tells_the_clients_apart(request: pytest.FixtureRequest) -> None:
    """The two clients share colours and differ by line style: each legend handle shows at least
    one whole dash and gap of its line on either side of its marker (a default handle, two font
    sizes long, is nearly all marker, and aiokafka's and kafka-python's read the same)."""
    import matplotlib.pyplot as plt

    from kafkahooks.bench._plot import per_request_figure

    data = json.loads((Path(__file__).resolve().parents[1] / "benchmarks/results/per-request.json").read_text())
    fig = per_request_figure(data["summary"], data["environment"])
    request.addfinalizer(lambda: plt.close(fig))
    legend = fig.axes[1].get_legend()
    handles = legend.legend_handles
    assert {"-", "--"} == {h.get_linestyle() for h in handles}
    length_pt = legend.handlelength * legend.prop.get_size_in_points()
    for handle in handles:
        period_pt = sum(plt.rcParams["lines.dashed_pattern"]) * handle.get_linewidth()
        assert (length_pt - handle.get_markersize()) / 2 >= period_pt, handle.get_label()


@pytest.mark.parametrize("name", ["per-fetched-batch-2026-12-07-slower-host.json", "per-fetched-batch.json"])
def test_the_per_batch_plot_folds_labels_that_would_overlap_into_ranges(
    request: pytest.FixtureRequest, name: str
) -> None:
    """The per-fetched-batch plots of record (the README's, and the slower host's before it, whose
    eight lines' ratios nearly meet near 1): no two labels left visible overlap, each hidden one's
    value lies in the range a visible label at its size reads (each mode's size is the records its
    batches carried, 99.6 or 100.2 for 100), and each label at the panel's right edge stays inside
    it."""
    import matplotlib.pyplot as plt

    from kafkahooks.bench._plot import per_request_figure

    results = Path(__file__).resolve().parents[1] / "benchmarks/results"
    data = json.loads((results / name).read_text())
    fig = per_request_figure(data["summary"], data["environment"])
    request.addfinalizer(lambda: plt.close(fig))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    folded = 0
    for ax in fig.axes[1::2]:  # the ratio panels
        shown = [t for t in ax.texts if t.get_visible()]
        boxes = [t.get_window_extent(renderer) for t in shown]
        assert [] == [(i, j) for i in range(len(boxes)) for j in range(i) if boxes[i].overlaps(boxes[j])]
        inside = ax.get_window_extent(renderer)
        assert all(box.x1 <= inside.x1 + 1 for box in boxes)
        for hidden in (t for t in ax.texts if not t.get_visible()):
            folded += 1
            value = float(hidden.get_text())
            ranges = [
                (min(values), max(values))
                for values in (
                    [float(v) for v in t.get_text().split("\u2013")]
                    for t in shown
                    if abs(t.xy[0] / hidden.xy[0] - 1) < 0.2
                )
            ]
            assert any(lo <= value <= hi for lo, hi in ranges), (value, ranges)
    if "slower-host" in name:
        assert folded > 0  # that run's ratios do nearly meet: the folding is exercised
