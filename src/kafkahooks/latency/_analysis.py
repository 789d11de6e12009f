"""Where a request's time goes, per client, broker and request key, with a verdict a person acts on.

The four parts of a request (kgo's timings, ``reference/kgo-hooks.md``)::

    created ─write wait─► write start ─time to write─► written ─read wait─► read start ─time to read─► read

- **write wait**: queued in the client before the write (requests ahead of it to that broker,
  connection set-up, throttling, a busy I/O thread);
- **time to write**: the socket write;
- **read wait**: behind earlier responses on the same connection (head-of-line);
- **time to read**: the broker's processing and the round trip (for Fetch, also the long poll).

The verdict looks at the slow tail: the requests whose whole time is at or above the group's p99.
It names the part that holds most of their time. Rules, in order (thresholds are module constants):

1. Fewer than :data:`MIN_REQUESTS` timed requests: too few to judge.
2. p99 under :data:`FAST_NS` (5 ms): nothing stands out.
3. Read wait over :data:`READ_WAIT_NS` on at least :data:`READ_WAIT_SHARE` (30%) of requests, or read
   wait holding most of the tail: responses queue behind a slow one on the same connection.
4. Write wait holds at least :data:`DOMINANT` (50%) of the tail: the client queues requests
   (Produce: raise ``max_in_flight_requests_per_connection`` or batch more).
5. Time to write holds the tail: writing is slow (large requests or a congested path).
6. Time to read holds the tail: the broker or the path to it; when other brokers answer the same
   client and key, its p99 time to read against theirs (:data:`OUTLIER` times theirs or more: this
   broker is the outlier).
7. Otherwise no single part dominates.

Fetch responses that carried no record (empty long polls) wait on purpose, up to the consumer's
``fetch_max_wait_ms``, and a request cut short by its own client's close ended when the client
chose: both are counted but left out of the timings. Errors are reported beside the verdict.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from kafkahooks.latency._format import FIELDS, SCHEMA

PARTS = ("write_wait_ns", "time_to_write_ns", "read_wait_ns", "time_to_read_ns")
NAMES = {
    "write_wait_ns": "write wait",
    "time_to_write_ns": "time to write",
    "read_wait_ns": "read wait",
    "time_to_read_ns": "time to read",
    "total_ns": "total",
}
MIN_REQUESTS = 20
"""Timed requests a group needs before it gets a verdict."""
FAST_NS = 5_000_000
"""A group whose p99 is under this (5 ms) gets "nothing stands out"."""
DOMINANT = 0.5
"""Share of the slow tail's time a part must hold to be named."""
READ_WAIT_NS = 1_000_000
READ_WAIT_SHARE = 0.3
"""Read wait over ``READ_WAIT_NS`` (1 ms) on this share of requests is head-of-line blocking."""
OUTLIER = 2.0
"""A broker whose p99 time to read is this many times the other brokers' median is the outlier."""


@dataclass(frozen=True)
class Spread:
    """p50, p99 and max of one timing, in nanoseconds (nearest-rank percentiles)."""

    p50: int
    p99: int
    max: int


@dataclass
class Group:
    """The requests of one client to one broker with one key."""

    client_id: str | None
    role: str | None
    broker: int
    address: str
    key: str
    requests: int = 0
    """All requests recorded, empty long polls and failures included."""
    empty: int = 0
    """Fetch responses without records and requests cut short by the client's own close (left
    out of the timings)."""
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    """From the first request's end to the last one's."""
    per_second: float = 0.0
    bytes_written: int = 0
    bytes_read: int = 0
    timings: dict[str, Spread] = field(default_factory=dict)
    """Per part and ``total_ns``, over the timed requests."""
    tail: dict[str, float] = field(default_factory=dict)
    """Each part's share of the slow tail's time (requests at or above the p99 total)."""
    read_waited: float = 0.0
    """Share of timed requests that waited over ``READ_WAIT_NS`` behind earlier responses."""
    verdict: str = ""
    evidence: str = ""

    @property
    def name(self) -> str:
        direction = "to" if self.key == "Produce" else "from" if self.key == "Fetch" else "on"
        return f"{self.key} {direction} broker {self.broker} ({self.address})"


@dataclass
class Breakdown:
    """What :func:`breakdown` found: one :class:`Group` per client, broker and key (busiest
    first), the slowest requests, and the dump lines that were not requests."""

    groups: list[Group]
    slowest: list[dict[str, Any]]
    requests: int
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "kafkahooks.latency",
            "version": 1,
            "requests": self.requests,
            "skipped_lines": self.skipped,
            "groups": [{**asdict(g), "name": g.name} for g in self.groups],
            "slowest": self.slowest,
        }


def load(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[dict[str, Any]], int]:
    """The request lines of flight-recorder dumps, and how many lines were not (bad JSON, another
    schema's header, missing fields): a dump cut short still reads."""
    rows: list[dict[str, Any]] = []
    skipped = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    skipped += 1
                    continue
                if not isinstance(row, dict):
                    skipped += 1
                elif row.get("schema") == SCHEMA:
                    continue  # a dump's header line
                elif all(k in row for k in FIELDS) and all(isinstance(row[k], int) for k in PARTS):
                    rows.append(row)
                else:
                    skipped += 1
    return rows, skipped


def _rank(values: Sequence[int], q: float) -> int:
    return values[max(0, math.ceil(q * len(values)) - 1)]


def _spread(values: list[int]) -> Spread:
    values.sort()
    return Spread(_rank(values, 0.5), _rank(values, 0.99), values[-1])


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.1f} ms" if ns >= 100_000 else f"{ns / 1e3:.0f} µs"


CLOSED = "ClientClosed"
"""The error of a request cut short because its own client closed: neither a failure nor timed."""


def _total(row: dict[str, Any]) -> int:
    total: int = row["write_wait_ns"] + row["time_to_write_ns"] + row["read_wait_ns"] + row["time_to_read_ns"]
    return total


def _timed(row: dict[str, Any]) -> bool:
    error = row["error"]
    return error != CLOSED and not (row["key"] == "Fetch" and error is None and row["records"] == 0)


def breakdown(rows: Iterable[dict[str, Any]], slowest: int = 10, skipped: int = 0) -> Breakdown:
    """Group requests (dump lines, :meth:`FlightRecorder.records`) by client, broker and key;
    percentiles of each part and of the whole; a verdict per group (see the module docs); the
    ``slowest`` requests overall with their parts."""
    groups: dict[tuple[Any, ...], Group] = {}
    members: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    timed_all: list[dict[str, Any]] = []
    count = 0
    for row in rows:
        count += 1
        gkey = (row["client_id"], row["role"], row["broker"], row["host"], row["port"], row["key"])
        group = groups.get(gkey)
        if group is None:
            group = groups[gkey] = Group(
                row["client_id"], row["role"], row["broker"], f"{row['host']}:{row['port']}", row["key"]
            )
            members[gkey] = []
        group.requests += 1
        group.bytes_written += row["bytes_written"]
        group.bytes_read += row["bytes_read"]
        if row["error"] is not None and row["error"] != CLOSED:
            group.errors[row["error"]] = group.errors.get(row["error"], 0) + 1
        if _timed(row):
            members[gkey].append(row)
            timed_all.append(row)
        else:
            group.empty += 1
    for gkey, group in groups.items():
        _summarise(group, members[gkey])
    for group in groups.values():
        _judge(group, [g for g in groups.values() if g is not group and _peer(g, group)])
    ordered = sorted(groups.values(), key=lambda g: (-g.requests, g.key, g.broker))
    top = sorted(timed_all, key=_total, reverse=True)[:slowest]
    return Breakdown(ordered, [{**r, "total_ns": _total(r)} for r in top], count, skipped)


def _peer(other: Group, group: Group) -> bool:
    return (other.client_id, other.role, other.key) == (group.client_id, group.role, group.key)


def _summarise(group: Group, rows: list[dict[str, Any]]) -> None:
    ends = [r["end_ns"] for r in rows] or [0]
    group.seconds = (max(ends) - min(ends)) / 1e9
    group.per_second = group.requests / group.seconds if group.seconds > 0 else 0.0
    if not rows:
        return
    totals = [_total(r) for r in rows]
    for part in PARTS:
        group.timings[part] = _spread([r[part] for r in rows])
    group.timings["total_ns"] = _spread(list(totals))
    cut = group.timings["total_ns"].p99
    tail = [r for r, t in zip(rows, totals, strict=True) if t >= cut]
    whole = sum(t for t in totals if t >= cut)
    group.tail = {p: (sum(r[p] for r in tail) / whole if whole else 0.0) for p in PARTS}
    group.read_waited = sum(1 for r in rows if r["read_wait_ns"] > READ_WAIT_NS) / len(rows)


def _judge(group: Group, peers: list[Group]) -> None:
    timed = group.requests - group.empty
    errors = ""
    if group.errors:
        failed = sum(group.errors.values())
        kinds = ", ".join(f"{n} {name}" for name, n in sorted(group.errors.items(), key=lambda i: -i[1]))
        errors = f" {failed} of {group.requests} requests failed ({kinds})."
    if timed < MIN_REQUESTS:
        group.verdict = f"too few requests to judge ({timed} timed, {MIN_REQUESTS} needed).{errors}"
        return
    total = group.timings["total_ns"]
    shares = group.tail
    group.evidence = (
        f"p99 {_ms(total.p99)}: "
        + ", ".join(f"{NAMES[p]} {shares[p]:.0%}" for p in PARTS)
        + f" of the slowest requests' time (p50 {_ms(total.p50)}, max {_ms(total.max)})"
    )
    top = max(PARTS, key=lambda p: shares[p])
    if total.p99 < FAST_NS:
        verdict = f"nothing stands out: p99 {_ms(total.p99)}."
    elif group.read_waited >= READ_WAIT_SHARE or (top == "read_wait_ns" and shares[top] >= DOMINANT):
        verdict = (
            f"responses queue behind a slow one on the same connection: {group.read_waited:.0%} of requests "
            f"waited over {_ms(READ_WAIT_NS)} for earlier responses (read wait p99 "
            f"{_ms(group.timings['read_wait_ns'].p99)}) — find the slow request ahead of them in the slowest list."
        )
    elif shares[top] < DOMINANT:
        verdict = f"no single part dominates p99 {_ms(total.p99)}."
    elif top == "write_wait_ns":
        advice = (
            "raise max_in_flight_requests_per_connection or batch more (linger_ms, batch size)"
            if group.key == "Produce"
            else "the client's I/O is busy or throttled, or connections are being set up"
        )
        verdict = f"{shares[top]:.0%} of p99 is write wait — the client queues requests before writing them: {advice}."
    elif top == "time_to_write_ns":
        size = group.bytes_written / group.requests if group.requests else 0
        verdict = (
            f"{shares[top]:.0%} of p99 is time to write — writing the request is slow: large requests "
            f"({size / 1024:.0f} KB on average) or a congested path to the broker."
        )
    else:
        verdict = f"{shares[top]:.0%} of p99 is time to read — the broker or the path to it"
        others = sorted(p.timings["time_to_read_ns"].p99 for p in peers if p.timings)
        mine = group.timings["time_to_read_ns"].p99
        if others:
            median = others[len(others) // 2]
            ratio = mine / median if median else math.inf
            if ratio >= OUTLIER:
                verdict += f": {ratio:.1f}x the other brokers' ({_ms(mine)} against {_ms(median)}): this broker."
            else:
                verdict += (
                    f", as on the other brokers ({_ms(mine)} against {_ms(median)}): the cluster, not one broker."
                )
        elif group.key == "Fetch":
            verdict += " (Fetch: it includes the broker's wait for data, up to fetch_max_wait_ms)."
        elif group.key == "Produce":
            verdict += " (Produce: with acks=all it includes replication)."
        else:
            verdict += "."
    group.verdict = verdict + errors
