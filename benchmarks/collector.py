"""What the garbage collector charges a consumer of one-record batches, by how many batches a
Fetch response holds, with `tracing="hooks"` (spans, metrics, data streams) and no client.

Each round walks one Fetch response of N one-record batches (the tap builds each batch's record
as the response is read), hands every batch out as one `getmany` would, then makes the export
worker's pass, for 60 000 batches in all. It counts the collector's passes per generation (young,
middle, full) and their time per batch, and how many tracked objects one response leaves alive
until its batches are handed out. A bigger response keeps more tracked objects alive at once:
they outlive young passes, are promoted, and bring on middle and full passes, whose cost grows
with the whole heap (``--ballast`` long-lived objects stand for a service's own).

    python benchmarks/collector.py [--responses 100,1000,4000] [--batches 60000] [--ballast 200000]
        [--untrack record,entry,handout,headers,tokens]

``--untrack`` is an experiment, never a fix: it takes the named objects out of the collector's
sight (CPython's ``PyObject_GC_UnTrack``, through ctypes) as they are made, to bound what the
collector would save if it did not have to look at them: each batch's record (``record``: since
commit d56c888 a flat plain tuple the collector untracks by itself at its first young pass; a
``BatchInfo`` before), the Fetch request's entry for it (``entry``), its hand-out
(``handout``: a flat plain tuple too since commit d56c888's successor, a ``HandOut`` before) and the
plugins' tokens for it (``tokens``). ``headers`` is kept for the command
lines of earlier runs and does nothing now: the header pairs are laid flat in the record. None
of them holds a cycle.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from micro import META, SMALL, TRACEPARENT, Telemetry, batch_bytes, fetch_response
from rich.console import Console
from rich.table import Table

from kafkahooks._wire import _batches
from kafkahooks._wire import aiokafka as _aiokafka
from kafkahooks._wire._tap import ConnectionTap
from kafkahooks.datastreams import set_pathway

UNTRACKABLE = ("record", "entry", "handout", "headers", "tokens")


class Passes:
    """A ``gc.callbacks`` entry: passes and seconds per generation, and the passes that ran during
    the export worker's pass (``in_worker``, set around it)."""

    def __init__(self) -> None:
        self.in_worker = False
        self._start = 0.0
        self.reset()

    def reset(self) -> None:
        """Count from now on."""
        self.passes = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.worker_passes = [0, 0, 0]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.passes[info["generation"]] += 1
            if self.in_worker:
                self.worker_passes[info["generation"]] += 1
            self.seconds[info["generation"]] += time.perf_counter() - self._start


@contextmanager
def untracked(what: frozenset[str], telemetry: Any) -> Iterator[None]:
    """The objects named in ``what`` untracked as they are made (an experiment: see the module docs)."""
    if not what:
        yield
        return
    untrack = ctypes.pythonapi.PyObject_GC_UnTrack
    untrack.argtypes = [ctypes.py_object]
    untrack.restype = None
    walk, fetched, offer = _batches.walk, ConnectionTap.fetched, telemetry.log.offer_other

    def walked(*args: Any, **kwargs: Any) -> Any:
        infos = walk(*args, **kwargs)
        if "record" in what:  # "headers" needs nothing: they are laid flat in the record
            for info in infos:
                untrack(info)
        return infos

    def tapped(self: ConnectionTap, req: Any, *args: Any, **kwargs: Any) -> None:
        known = len(req.fetched_raw or ())
        fetched(self, req, *args, **kwargs)
        if "entry" in what:
            for entry in (req.fetched_raw or [])[known:]:
                untrack(entry)

    def offered(item: Any) -> bool:
        if "tokens" in what:
            for token in item[5:]:  # a RawHandOut's tokens
                if type(token) is tuple:
                    untrack(token)
        if "handout" in what:
            untrack(item)
        return offer(item)  # type: ignore[no-any-return]

    _batches.walk = walked
    ConnectionTap.fetched = tapped  # type: ignore[method-assign]
    telemetry.log.offer_other = offered
    try:
        yield
    finally:
        _batches.walk = walk
        ConnectionTap.fetched = fetched  # type: ignore[method-assign]
        telemetry.log.offer_other = offer


def producer_headers() -> list[tuple[str, bytes]]:
    """A producer batch's first-record headers with tracing="hooks": its trace context and pathway."""
    set_pathway(None)
    producer = Telemetry("producer")
    headers = [("traceparent", TRACEPARENT), *(producer.dispatch.inject_batch_headers("orders", 0, ()) or [])]
    producer.close()
    return headers


def measure(
    per_response: int, batches: int, header: list[tuple[str, bytes]], untrack: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Passes per generation, and µs per batch, for ``batches`` one-record batches that arrive
    ``per_response`` to a Fetch response (``untrack``: see :func:`untracked`)."""
    t = Telemetry("consumer")
    tap = ConnectionTap(t.dispatch, META, None, _aiokafka.first_headers)
    tracker = t.dispatch.handouts
    assert tracker is not None
    one = bytearray(batch_bytes(header, records=1))
    raw = bytearray()
    for i in range(per_response):
        one[0:8] = i.to_bytes(8, "big")
        raw += one
    response = bytes(raw)
    rounds = max(batches // per_response, 1)

    passes = Passes()

    def hand_out_and_pass() -> None:
        scope = tracker.begin_scope()
        cursor = tracker.cursor("orders", 0, 0)
        for b in range(per_response):
            cursor.entered(b, b + 1, 0)
        cursor.finished()
        tracker.end_scope(scope)
        passes.in_worker = True
        t.log.process()
        t.streams.process()
        passes.in_worker = False

    with untracked(untrack, t):
        fetch_response(tap, response)  # warm: what the first round allocates once
        hand_out_and_pass()
        gc.collect()
        before = len(gc.get_objects())
        fetch_response(tap, response)
        alive = (len(gc.get_objects()) - before) / per_response  # the response walked, not handed out
        hand_out_and_pass()
        gc.collect()
        passes.reset()
        gc.callbacks.append(passes)
        start = time.perf_counter()
        try:
            for _ in range(rounds):
                fetch_response(tap, response)
                hand_out_and_pass()
        finally:
            gc.callbacks.remove(passes)
        elapsed = time.perf_counter() - start
    assert 0 == t.log.dropped, "a round outgrew the request log: the figures would time refusals"
    t.close()
    n = rounds * per_response
    return {
        "batches_per_response": per_response,
        "untracked": sorted(untrack),
        "batches": n,
        "tracked_alive_per_batch": alive,
        "passes": passes.passes,
        "worker_passes": passes.worker_passes,
        "gc_us_per_batch": [s / n * 1e6 for s in passes.seconds],
        "us_per_batch": elapsed / n * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", default=f"{SMALL},1000,4000", help="batches per Fetch response, comma-separated")
    parser.add_argument("--batches", type=int, default=60_000)
    parser.add_argument("--ballast", type=int, default=200_000, help="long-lived one-item lists (a service's heap)")
    parser.add_argument(
        "--untrack", default="", help=f"an experiment: objects to untrack as they are made, of {','.join(UNTRACKABLE)}"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    ballast = [[i] for i in range(args.ballast)]
    gc.collect()
    untrack = frozenset(w for w in args.untrack.split(",") if w)
    if untrack - set(UNTRACKABLE):
        parser.error(f"--untrack takes {', '.join(UNTRACKABLE)}")
    header = producer_headers()
    results = [measure(int(n), args.batches, header, untrack) for n in args.responses.split(",")]
    del ballast
    if args.json:
        print(json.dumps(results, indent=2))
        return
    title = f'the collector per one-record batch, tracing="hooks", {args.ballast} ballast objects'
    table = Table(title=title + (f", untracked: {', '.join(sorted(untrack))}" if untrack else ""))
    for column in (
        "batches a response",
        "tracked alive a batch",
        "passes young/middle/full",
        "of them in the worker's pass",
        "gc µs a batch",
        "µs a batch",
    ):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            str(r["batches_per_response"]),
            f"{r['tracked_alive_per_batch']:.1f}",
            "/".join(str(p) for p in r["passes"]),
            "/".join(str(p) for p in r["worker_passes"]),
            " / ".join(f"{s:.2f}" for s in r["gc_us_per_batch"]),
            f"{r['us_per_batch']:.2f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
