"""``benchmarks/insitu.py`` times kafkahooks' event-loop frames in a real aiokafka producer, and
splits a mode's extra CPU into those frames and the rest."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import pytest

from tests._benchmarks import BENCHMARKS, load

SCRIPT = BENCHMARKS / "insitu.py"
PROBE = {"probe.call", "probe.clock"}


def _script() -> Any:
    return load("insitu")


def _child(
    bootstrap: str, mode: str, timed: bool, messages: int = 4000, workload: str = "produce", ballast: int = 0
) -> dict[str, Any]:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if workload == "produce":
            topic = f"insitu-{uuid.uuid4().hex[:8]}"
            admin.create_topics([NewTopic(topic, 1, 1)])
        else:
            topic = _script().fill(bootstrap, admin, messages)
    finally:
        admin.close()
    flag = "1" if timed else "0"
    argv = [sys.executable, str(SCRIPT), "--child", workload, mode, bootstrap, topic, str(messages), flag, str(ballast)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert 0 == proc.returncode, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_every_entry_point_is_timed_once_per_request_or_batch(bootstrap: str) -> None:
    """A timed data-streams producer: each frame ran, the request frames once per Produce request,
    the first append once per batch (one partition: a batch per request), each for some time."""
    script = _script()
    run = _child(bootstrap, "dsm", timed=True)
    assert run["timed"] is True
    requests = run["requests"]
    assert requests is not None
    assert 4000 / (16_384 / 100) <= requests <= 4000  # 100-byte records in 16 KiB batches at most
    wrappers = {outer for outer, _ in script.WRAPPERS.values()}
    inner = {name for _, names in script.WRAPPERS.values() for name in names}
    assert set(run["calls"]) == set(script.FRAMES) | wrappers | inner | PROBE
    for name in ("request_sent", "tap.written", "tap.frame_read", "response_decoded", "hooked.send", "client.send"):
        assert requests == run["calls"][name], name
    assert requests == run["calls"]["first_append"]
    # The probe: an empty call timed as each batch opens, and again in a warm loop; each a clock
    # read plus the call, so longer than the clock read alone.
    probe = run["probe"]
    assert probe["calls"] == requests
    assert probe["in_place_us"] > probe["in_place_clock_us"] > 0
    assert probe["warm_us"] > probe["warm_clock_us"] > 0
    # Every response passes the frame handler, every frame the transport (ApiVersions and Metadata
    # went before the measured records; nothing else is sent meanwhile).
    for name in ("hooked.handle_frame", "client.handle_frame", "timed.write", "transport.write"):
        assert requests == run["calls"][name], name
    timed = run["timed_us"]
    assert all(us > 0 for us in timed.values()), timed
    for outer, names in script.WRAPPERS.values():  # a wrapper's time holds what ran inside it
        assert timed[outer] > sum(timed[name] for name in names), (outer, timed)
    assert 0 < run["main_us_per_message"] < 10_000
    assert run["messages_per_second"] > 0


def test_a_getmany_consumer_times_its_fetches_and_hand_outs(bootstrap: str) -> None:
    """A timed data-streams consumer reading with getmany: the measured topic's Fetch requests fall
    inside the measurement (the warm-up read another topic), each hand-out frame ran, and every
    record batch was entered once."""
    script = _script()
    run = _child(bootstrap, "dsm", timed=True, messages=3000, workload="getmany")
    requests = run["requests"]
    assert requests is not None
    assert requests >= 1
    wrappers = {outer for outer, _ in script.WRAPPERS.values()}
    inner = {name for _, names in script.WRAPPERS.values() for name in names}
    unsplit = {name for outer, _ in script.UNSPLIT.values() for name in outer}
    assert set(run["calls"]) == set(script.GETMANY_FRAMES) | wrappers | inner | unsplit | PROBE
    for name in ("request_sent", "tap.written", "tap.frame_read", "response_decoded", "hooked.handle_frame"):
        assert requests == run["calls"][name], name
    # 3 000 records of 100 bytes in 64 KiB producer batches: a few batches, each entered once, and
    # the iterator asked once more per result whether another follows.
    calls = run["calls"]
    entered = calls["batch_entered"]
    assert 3000 * 100 / 65536 <= entered <= 3000
    assert entered == calls["handout.next_batch"]
    assert entered == run["probe"]["calls"]  # the probe runs as each batch is entered
    assert calls["batch_finished"] == calls["handout.has_next"] >= entered
    assert calls["scope"] >= 2
    assert calls["scope"] % 2 == 0  # each getmany call begins and ends its scope
    assert calls["handouts.sync"] >= 1
    assert all(us > 0 for us in run["timed_us"].values()), run["timed_us"]


def test_the_bare_side_and_an_untimed_mode_carry_no_timers(bootstrap: str) -> None:
    bare = _child(bootstrap, "bare", timed=False, messages=2000)
    untimed = _child(bootstrap, "dsm", timed=False, messages=2000)
    for run in (bare, untimed):
        assert run["timed"] is False
        assert run["calls"] == {}
        assert run["requests"] is None
        assert run["probe"] is None
        assert 0 < run["main_us_per_message"] < 10_000


def test_every_process_meters_the_collector_and_ballast_stays_alive(bootstrap: str) -> None:
    """The collector's passes inside the measurement, per generation, in every process; a
    ballasted process holds that many more tracked objects to the end."""
    bare = _child(bootstrap, "bare", timed=False, messages=3000, workload="getmany")
    heavy = _child(bootstrap, "bare", timed=False, messages=3000, workload="getmany", ballast=20_000)
    for run in (bare, heavy):
        assert sum(run["gc_collections"]) >= 1  # 3 000 consumer records: several young passes
        assert len(run["gc_generation_us"]) == 3
        assert run["gc_us"] > 0
        assert all(us > 0 for us, n in zip(run["gc_generation_us"], run["gc_collections"], strict=True) if n)
    assert heavy["gc_tracked"] >= bare["gc_tracked"] + 20_000


def test_the_summary_splits_the_extra_into_frames_and_the_rest() -> None:
    """Medians per request: (mode - bare) event-loop CPU times records per request, the frames'
    sum, the rest as the difference, and the timers' cost as timed minus untimed."""
    script = _script()
    timed_us = dict.fromkeys(script.FRAMES, 2.0)  # each frame: 2 µs
    for outer, inner in script.WRAPPERS.values():  # each client call 3 µs, each wrapper 1 µs of its own
        timed_us.update({name: 3.0 for name in inner if name not in script.FRAMES})
        timed_us[outer] = sum(timed_us[name] for name in inner) + 1.0
    runs = []
    for bare, plain, timed in ((5.0, 5.5, 5.6), (6.0, 6.5, 6.6), (5.5, 6.0, 6.1)):
        # The collector: 1 µs a message in bare, 1.2 in the mode (20 µs more per 100-record request).
        gc_bare, gc_mode = {"gc_us": 100_000.0}, {"gc_us": 120_000.0}
        runs += [
            {"side": "bare", "main_us_per_message": bare, "messages_per_second": 1e6 / bare, "messages": 100_000}
            | gc_bare,
            {"side": "untimed", "main_us_per_message": plain, "messages_per_second": 1e6 / plain, "messages": 100_000}
            | gc_mode,
            {
                "side": "timed",
                "mode": "dsm",
                "timed": True,
                "main_us_per_message": timed,
                "messages": 100_000,
                "requests": 1000,
                "timed_us": {name: us * 1000 for name, us in timed_us.items()},  # 1 000 requests
                "probe": {"in_place_us": 0.15, "in_place_clock_us": 0.03, "warm_us": 0.05, "warm_clock_us": 0.03},
            },
        ]
    summary = script.summarize(runs, "dsm")
    assert summary["rounds"] == 3
    assert summary["records_per_unit"] == 100
    assert summary["extra_us_per_unit"] == pytest.approx(50.0)
    ours = 2.0 * len(script.FRAMES) + 1.0 * len(script.WRAPPERS)
    assert summary["wrappers_us_per_unit"] == pytest.approx(dict.fromkeys(script.WRAPPERS, 1.0))
    assert summary["frames_total_us_per_unit"] == pytest.approx(ours)
    assert summary["rest_us_per_unit"] == pytest.approx(50.0 - ours)
    assert summary["bare_gc_us_per_unit"] == pytest.approx(100.0)
    assert summary["gc_extra_us_per_unit"] == pytest.approx(20.0)
    assert summary["rest_beyond_gc_us_per_unit"] == pytest.approx(50.0 - ours - 20.0)
    assert summary["timers_us_per_unit"] == pytest.approx(10.0)
    assert summary["main_cpu_ratio"] == pytest.approx(6.0 / 5.5)
    assert summary["throughput_ratio"] == pytest.approx(5.5 / 6.0)
    assert summary["unsplit_us_per_unit"] == {}
    assert summary["empty_call_in_place_us"] == pytest.approx(0.12)  # the probe less its clock read
    assert summary["empty_call_warm_us"] == pytest.approx(0.02)
    # A consumer's unit is 1 000 records, ten requests' worth here: every figure ten times larger.
    # The records wrappers (getmany) hold frames of ours and the client's calls: shown apart, less ours.
    for run in runs:
        if run["side"] == "timed":
            run["timed_us"].update({"handout.has_next": 5000.0, "handout.next_batch": 7000.0})
            run["timed_us"].update({"batch_finished": 4000.0, "batch_entered": 5000.0})
    per_kmsg = script.summarize(runs, "dsm", per_request=False, unsplit_names=script.UNSPLIT)
    assert per_kmsg["unsplit_us_per_unit"] == pytest.approx(dict.fromkeys(script.UNSPLIT, 30.0))
    assert per_kmsg["unit"] == "1 000 records"
    assert per_kmsg["extra_us_per_unit"] == pytest.approx(500.0)
    assert per_kmsg["frames_total_us_per_unit"] == pytest.approx(10 * ours)


def test_a_wrapper_that_never_ran_has_no_time_of_its_own() -> None:
    """Bare against bare (``--mode bare``): the timed process ran the client's calls under their
    timers but none of kafkahooks' wrappers, so no wrapper time, and no frames."""
    script = _script()
    runs = []
    for us in (5.0, 5.2):
        runs += [
            {"side": "bare", "main_us_per_message": us, "messages_per_second": 1e6 / us, "messages": 1000},
            {"side": "untimed", "main_us_per_message": us, "messages_per_second": 1e6 / us, "messages": 1000},
            {
                "side": "timed",
                "main_us_per_message": us,
                "messages": 1000,
                "requests": 10,
                "timed_us": {"client.send": 300.0, "client.handle_frame": 500.0, "transport.write": 100.0},
            },
        ]
    summary = script.summarize(runs, "bare")
    assert summary["wrappers_us_per_unit"] == dict.fromkeys(script.WRAPPERS, 0.0)
    assert summary["frames_total_us_per_unit"] == 0.0
    assert summary["extra_us_per_unit"] == pytest.approx(0.0)
    assert summary["empty_call_in_place_us"] is None  # no batch code of ours: no probe


def test_the_collector_clock_counts_its_thread_only_and_restarts_on_reset() -> None:
    """The bench's collector clock (what every side's process, and insitu's, meters the collector
    with): passes per generation on the thread it watches, none from another thread."""
    import gc
    import threading

    from kafkahooks.bench._worker import CollectorClock

    mine, any_thread = CollectorClock(threading.get_ident()), CollectorClock()
    was_enabled = gc.isenabled()
    gc.disable()  # only the passes asked for below
    gc.callbacks.extend((mine, any_thread))
    try:
        gc.collect()
        assert mine.passes == [0, 0, 1]
        assert mine.seconds > 0
        other = threading.Thread(target=gc.collect)
        other.start()
        other.join()
        assert mine.passes == [0, 0, 1]  # the other thread's pass is not this thread's
        assert any_thread.passes == [0, 0, 2]
        mine.reset()
        assert (mine.passes, mine.seconds) == ([0, 0, 0], 0)
        gc.collect(0)
        assert mine.passes == [1, 0, 0]
    finally:
        gc.callbacks.remove(mine)
        gc.callbacks.remove(any_thread)
        if was_enabled:
            gc.enable()
