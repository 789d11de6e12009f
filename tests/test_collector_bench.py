"""``benchmarks/collector.py`` counts what it says: the collector's passes per generation for
one-record batches by how many a Fetch response holds, with tracing="hooks" and no client, and,
as an experiment, with the batch records untracked as they are made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def collector(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "collector.py"), "--batches", "20000", "--ballast", "1000", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_bigger_response_brings_on_more_collector_passes() -> None:
    """A response handed out and passed to the worker a hundred batches at a time leaves the
    young generation nearly empty; one of 2 000 batches keeps more alive past young passes (the
    hand-outs, until the worker's pass), which then run several times as often, and middle ones
    with them. The batches themselves (flat tuples
    of numbers, bytes and strings, and the Fetch request's entries for them) are untracked at
    their first young pass: after the walk, nearly nothing of a batch is still tracked, and the
    experiment that untracks the hand-outs too leaves the young passes where they were."""
    small, big = collector("--responses", "100,2000", "--json")
    assert (100, 2000) == (small["batches_per_response"], big["batches_per_response"])
    assert 20_000 == small["batches"] == big["batches"]
    assert big["passes"][0] >= 5 * max(small["passes"][0], 1)
    assert big["passes"][1] > small["passes"][1]
    assert all(w <= p for w, p in zip(big["worker_passes"], big["passes"], strict=True))
    assert big["tracked_alive_per_batch"] < 0.5
    assert all(s >= 0 for s in small["gc_us_per_batch"] + big["gc_us_per_batch"])
    (untracked,) = collector("--responses", "2000", "--untrack", "record,entry,handout", "--json")
    assert ["entry", "handout", "record"] == untracked["untracked"]
    assert untracked["tracked_alive_per_batch"] < 0.5
    # Untracked objects still count as allocations: as many young passes (give or take what the
    # span processor's thread allocates meanwhile).
    assert abs(big["passes"][0] - untracked["passes"][0]) <= big["passes"][0] // 20


def test_a_fetched_batch_is_untracked_at_its_first_young_pass() -> None:
    """What the tap keeps of each fetched batch until its hand-out and the worker's pass leaves
    the collector's sight before it reaches the oldest generation: the batch, headers and all, at
    the first young pass that sees it, the Fetch request's entry for it at the latest at the next
    middle pass. A named tuple, an enum member, a dict or a nested tuple of header pairs in the
    batch each kept it tracked (tried with each). Its hand-out keeps nothing at all."""
    import gc

    from kafkahooks.hooks._records import batch_info, raw_headers

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from micro import META, TRACEPARENT, Telemetry, batch_bytes

        from kafkahooks._wire import aiokafka as _aiokafka
        from kafkahooks._wire._tap import ConnectionTap
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    t = Telemetry("consumer")
    try:
        tap = ConnectionTap(t.dispatch, META, None, _aiokafka.first_headers)
        one = bytearray(batch_bytes([("traceparent", TRACEPARENT), ("other", b"x")], records=1))
        response = bytearray()
        for i in range(300):
            one[0:8] = i.to_bytes(8, "big")
            response += one
        tracker = t.dispatch.handouts
        assert tracker is not None
        offered: list[Any] = []
        offer = t.log.offer_other
        t.log.offer_other = lambda item: offered.append(item) or offer(item)

        def fetch() -> list[Any]:
            req = tap.new_request(1, 0, 100, True)
            tap.fetched(req, "orders", 0, bytes(response))
            assert req.fetched_raw is not None
            return req.fetched_raw

        def hand_out() -> None:  # all at once, as a getmany hands them out
            offered.clear()
            scope = tracker.begin_scope()
            cursor = tracker.cursor("orders", 0, 0)
            for base in range(300):
                cursor.entered(base, base + 1, 0)
            cursor.finished()
            tracker.end_scope(scope)

        fetch()  # warm: what the plugins make once and keep (data streams' edge tags)
        hand_out()
        gc.collect()
        gc.disable()
        try:
            entries = fetch()
            assert 300 == len(entries)
            assert all(gc.is_tracked(e) for e in entries)  # tuples are tracked when made
            gc.collect(0)
            assert not any(gc.is_tracked(e[2]) for e in entries)
            # An entry may be looked at before its batch in that pass (the collector visits
            # containers first), and so wait for the next one, a middle pass: never a full one.
            gc.collect(1)
            assert not any(gc.is_tracked(e) for e in entries)
            # Their hand-outs wait for nothing: kafkahooks' own plugins fold each as it is made
            # (data streams queue a row of numbers, metrics add to a count per topic), so none is
            # queued, and none leaves a block of its own on the heap until the worker's pass
            # (each one's tuples and numbers did: PackedBuffer says what that cost the client).
            # (A full collection empties CPython's free lists of tuples and floats, whose blocks
            # count as allocated: what the hand-outs made and freed can sit there.)
            gc.collect()
            before = sys.getallocatedblocks()
            hand_out()
            gc.collect()
            held = sys.getallocatedblocks() - before
            assert [] == offered
            assert held < 30, f"{held} heap blocks left by 300 hand-outs"
        finally:
            gc.enable()
            t.log.offer_other = offer
        topic, partition, batch = entries[0]
        assert (("traceparent", TRACEPARENT),) == raw_headers(batch)  # only the wanted keys
        assert (0, 0, ("orders", 0)) == (batch_info(batch).base_offset, batch[4], (topic, partition))
    finally:
        t.close()
