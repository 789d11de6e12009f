"""The benchmark's ablations (``kafkahooks bench --ablate``): each mode takes out exactly its piece
of kafkahooks' machinery, costs no record, and puts the piece back at teardown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from click.testing import CliRunner

from kafkahooks import aiokafka as wrapped
from kafkahooks import export
from kafkahooks._wire._tap import ConnectionTap
from kafkahooks._wire.aiokafka import ADAPTER as AIOKAFKA
from kafkahooks._wire.aiokafka import _headers
from kafkahooks._wire.aiokafka._connections import _hooked
from kafkahooks._wire.kafka_python import ADAPTER as KAFKA_PYTHON
from kafkahooks.bench._ablations import ABLATION_MODES, ABLATIONS, ablation_modes
from kafkahooks.bench._modes import MODES
from kafkahooks.cli import _chosen_modes, main
from kafkahooks.datastreams import HEADER
from kafkahooks.hooks._requests import RequestLog

N = 30


def patched_state() -> dict[str, Any]:
    """Everything an ablation may replace, as it is now."""
    import kafkahooks._wire.aiokafka as package

    return {
        "adapters": [dict(vars(AIOKAFKA)), dict(vars(KAFKA_PYTHON))],
        "hook_client": vars(package)["hook_client"],
        "with_batch_headers": _headers.with_batch_headers,
        "log": vars(RequestLog)["__init__"],
        "process": vars(RequestLog)["process"],
        "walk": vars(ConnectionTap)["_produce_batches"],
    }


def watched(producer: Any) -> bool:
    """Whether the producer has a batch open, and it carries kafkahooks' refusal watch."""
    batches = [b for queue in producer._message_accumulator._batches.values() for b in queue]
    assert batches, "no batch open"
    return any(isinstance(vars(b).get("failure"), _headers._RefusalWatch) for b in batches)


async def produce_under(mode: str, bootstrap: str, topic: str) -> dict[str, Any]:
    """Send N records with ``mode``'s producer; what its machinery looked like while it ran."""
    telemetry = MODES[mode].setup("aiokafka", "producer")
    try:
        producer = wrapped.AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, **telemetry.client_kwargs)
        await producer.start()
        try:
            await producer.send(topic, b"0")
            opened = watched(producer)  # the batch is open for its linger
            for i in range(1, N):
                await producer.send(topic, b"%d" % i)
            await producer.flush()
            seen = {
                "hooked": any(_hooked(conn) for conn in producer.client._conns.values()),
                "batch_open": "_append_batch" in vars(producer._message_accumulator),
                "send_wrapper": "send" in vars(producer.client),
                "watched": opened,
            }
        finally:
            await producer.stop()
        export.flush()
        log = producer._kh.dispatch.request_log
        seen["requests_logged"] = log.buffer.accepted if log is not None else 0
        streams = telemetry.client_kwargs.get("data_streams")
        seen["points"] = streams.buffer.accepted if streams is not None else 0
    finally:
        telemetry.close()
    return seen


async def read_back(bootstrap: str, topic: str) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        got: list[Any] = []
        while len(got) < N:
            batches = await consumer.getmany(timeout_ms=5_000)
            assert batches, f"only {len(got)} of {N} records came back"
            got.extend(r for records in batches.values() for r in records)
    finally:
        await consumer.stop()
    return [(r.value, list(r.headers)) for r in got]


async def test_the_base_mode_has_every_piece(bootstrap: str, topic: str) -> None:
    """dsm, the base the ablations take apart: hooked connections, the batch-open stand-in, the
    send wrapper; requests reach the log and produce checkpoints are recorded."""
    seen = await produce_under("dsm", bootstrap, topic)
    assert (True, True, True) == (seen["hooked"], seen["batch_open"], seen["send_wrapper"])
    assert seen["requests_logged"] > 0
    assert seen["points"] > 0
    assert [b"%d" % i for i in range(N)] == [v for v, _ in await read_back(bootstrap, topic)]


@pytest.mark.parametrize("name", list(ABLATIONS))
async def test_an_ablation_takes_out_its_piece_only_and_puts_it_back(name: str, bootstrap: str, topic: str) -> None:
    before = patched_state()
    seen = await produce_under(f"dsm-no-{name}", bootstrap, topic)
    assert before == patched_state(), "the teardown put every piece back"
    records = await read_back(bootstrap, topic)
    assert [b"%d" % i for i in range(N)] == [v for v, _ in records], "no record lost or reordered"
    headed = any(HEADER in dict(h) for _, h in records)
    expected = {
        # piece: (hooked, batch_open, send_wrapper, requests_logged > 0, points > 0, headed)
        "taps": (False, True, False, False, False, True),
        "batch-open": (True, False, True, True, False, False),
        "send-wrapper": (True, True, False, True, True, True),
        "refusal-watch": (True, True, True, True, True, True),
        "request-log": (True, True, True, False, False, True),
        "export-work": (True, True, True, True, False, True),
        "produce-walk": (True, True, True, True, False, True),
    }[name]
    got = (
        seen["hooked"],
        seen["batch_open"],
        seen["send_wrapper"],
        seen["requests_logged"] > 0,
        seen["points"] > 0,
        headed,
    )
    assert expected == got
    assert (name not in ("refusal-watch", "batch-open")) == seen["watched"]


@pytest.mark.parametrize(("mode", "headers"), [("inject-none", []), ("inject-header", [(HEADER, b"A" * 28)])])
async def test_the_floors_add_nothing_or_one_constant_header_per_batch(
    mode: str, headers: list[tuple[str, bytes]], bootstrap: str, topic: str
) -> None:
    seen = await produce_under(mode, bootstrap, topic)
    assert (False, True) == (seen["hooked"], seen["batch_open"])  # an injector only: no taps
    records = await read_back(bootstrap, topic)
    assert [b"%d" % i for i in range(N)] == [v for v, _ in records]
    assert headers == records[0][1]  # the first record of the first batch
    assert all(h in ([], headers) for _, h in records)


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_an_ablation_touches_its_own_client_library_only(name: str) -> None:
    """An aiokafka process given an ablation never imports kafka-python (a larger heap would slow
    every full pass of its collector, and the ablation would price that too)."""
    program = (
        "import sys\n"
        "from kafkahooks.bench._ablations import ABLATIONS\n"
        f"undo = ABLATIONS[{name!r}][1]('aiokafka')\n"
        "print(sorted(m for m in sys.modules if m == 'kafka' or m.startswith(('kafka.', 'kafkahooks._wire.kafka'))))\n"
        "for step in reversed(undo): step()\n"
    )
    found = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    assert "[]" == found.stdout.strip(), found.stderr


def test_ablate_runs_the_mode_its_floors_and_each_piece_taken_out() -> None:
    assert ["dsm", "inject-none", "inject-header", *(f"dsm-no-{n}" for n in ABLATIONS)] == ablation_modes("dsm")
    both = _chosen_modes(("off",), False, ("dsm", "hooks"))
    assert ["off", *ablation_modes("dsm"), "hooks", *(f"hooks-no-{n}" for n in ABLATIONS)] == both
    assert _chosen_modes((), False, ()) == [m for m in MODES if MODES[m].default]
    assert set(ablation_modes("hooks")) - {"hooks"} <= ABLATION_MODES <= set(MODES)
    assert not any(MODES[m].default for m in ABLATION_MODES)


def test_an_ablation_mode_runs_in_the_bench_workers(tmp_path: Path, bootstrap: str) -> None:
    """The bench's worker processes know the ablation modes (they are defined where every mode is)."""
    result = CliRunner().invoke(
        main,
        [
            "bench", "--bootstrap", bootstrap, "--client", "aiokafka", "--workload", "produce",
            "--mode", "dsm-no-taps", "--rounds", "1", "--messages", "300", "--output", str(tmp_path),
        ],
    )  # fmt: skip
    assert 0 == result.exit_code, result.output
    data = json.loads((tmp_path / "throughput.json").read_text())
    assert all(run["ok"] for run in data["runs"]), [r.get("error") for r in data["runs"] if not r["ok"]]
    assert {"bare", "dsm-no-taps"} == {row["mode"] for row in data["summary"]}
