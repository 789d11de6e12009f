"""``kafkahooks latency``: the breakdown of flight-recorder dumps, as tables and verdicts."""

from __future__ import annotations

from typing import Any

from kafkahooks.latency._analysis import MIN_REQUESTS, NAMES, PARTS, Breakdown


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.2f}"


def render(result: Breakdown, out: Any) -> None:
    """Print the per-group table, one verdict per group, and the slowest requests on a rich
    console (a terminal gets boxes and colour; a pipe or a file plain text)."""
    from rich import box
    from rich.table import Table

    plain = not out.is_terminal
    style = box.ASCII2 if plain else box.HEAVY_HEAD
    table = Table(
        title=f"{result.requests} requests by client, broker and key (ms)",
        caption="timings over requests that carried records (empty long polls left out); "
        "the four parts at their own p99; broker: node id (the verdicts name its address)",
        box=style,
    )
    table.add_column("client", no_wrap=True)
    table.add_column("broker", no_wrap=True)
    table.add_column("key", no_wrap=True)
    for name in ("requests", "req/s", "KB out/in", "p50", "p99", "max", "write wait", "write", "read wait", "read"):
        table.add_column(name, justify="right")
    for g in result.groups:
        total = g.timings.get("total_ns")
        cells = [_ms(total.p50), _ms(total.p99), _ms(total.max)] if total else ["-"] * 3
        parts = [_ms(g.timings[p].p99) if p in g.timings else "-" for p in PARTS]
        requests = f"{g.requests}" + (f" ({g.empty} empty)" if g.empty else "")
        table.add_row(
            f"{g.client_id} ({g.role})",
            f"{g.broker}",
            g.key,
            requests,
            f"{g.per_second:.0f}",
            f"{g.bytes_written / 1024:.0f}/{g.bytes_read / 1024:.0f}",
            *cells,
            *parts,
        )
    out.print(table)
    out.print("\nVerdicts", style=None if plain else "bold")
    judged = [g for g in result.groups if g.evidence]
    for g in judged:
        out.print(f"- {g.name}, {g.client_id} ({g.role}): {g.verdict}", markup=False, highlight=False)
        out.print(f"    {g.evidence}", markup=False, highlight=False)
    unjudged = len(result.groups) - len(judged)
    if unjudged:
        out.print(f"- {unjudged} more (client, broker, key) with under {MIN_REQUESTS} timed requests: too few to judge")
    if result.slowest:
        slow = Table(title=f"the {len(result.slowest)} slowest requests (ms)", box=style)
        for name in ("client", "broker", "key", "total", *(NAMES[p] for p in PARTS), "bytes out", "bytes in", "error"):
            slow.add_column(name, justify="left" if name in ("client", "broker", "key", "error") else "right")
        for r in result.slowest:
            slow.add_row(
                f"{r['client_id']}",
                f"{r['broker']}",
                r["key"],
                _ms(r["total_ns"]),
                *(_ms(r[p]) for p in PARTS),
                f"{r['bytes_written']}",
                f"{r['bytes_read']}",
                r["error"] or "",
            )
        out.print(slow)
    if result.skipped:
        out.print(f"{result.skipped} lines were not flight-recorder requests and were skipped")
