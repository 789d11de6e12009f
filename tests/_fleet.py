"""A fleet of a dozen services as checkpoint dumps, made with the real DataStreams API: the
data-stream map's test fixture (and the README's picture: ``python -m tests._fleet DIR``, then
``kafkahooks map DIR/*.jsonl --output DIR``).

gateway writes ``orders``, which five groups read (billing, inventory, shipping, fraud-detector,
analytics); billing writes ``payments`` → payment-processor → ``payment-results``, read by three
groups (notifier, ledger, and analytics, which also reads ``orders``: fan-in); inventory,
shipping and fraud-detector each write a topic read downstream (warehouse, notifier, ledger);
notifier writes ``emails``, which nobody reads. 10 services, 7 topics, 19 edges.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from kafkahooks.datastreams import DataStreams, JsonLinesExporter

FLEET: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # service: (topics read, topics written), in an order where every topic is written before it is read
    "gateway": ((), ("orders",)),
    "billing": (("orders",), ("payments",)),
    "inventory": (("orders",), ("stock-updates",)),
    "shipping": (("orders",), ("shipments",)),
    "fraud-detector": (("orders",), ("fraud-alerts",)),
    "payment-processor": (("payments",), ("payment-results",)),
    "analytics": (("orders", "payment-results"), ()),
    "warehouse": (("stock-updates",), ()),
    "notifier": (("payment-results", "shipments"), ("emails",)),
    "ledger": (("payment-results", "fraud-alerts"), ()),
}
EDGES = {(f"service:{s}", f"topic:{t}", None) for s, (_, out) in FLEET.items() for t in out} | {
    (f"topic:{t}", f"service:{s}", s) for s, (read, _) in FLEET.items() for t in read
}


def write_fleet(
    directory: Path, batches: int = 40, fleet: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = FLEET
) -> list[Path]:
    """One checkpoint dump per service of ``fleet`` in ``directory`` (``batches`` batches of 25
    records move along every edge, 2 to 38 ms per hop; every consumer group is a few records
    behind). A topic read before anything wrote it (a cycle) starts new pathways."""
    directory.mkdir(parents=True, exist_ok=True)
    t0 = 1_700_000_000_000
    paths = {name: directory / f"{name}.jsonl" for name in fleet}
    streams = {name: DataStreams(name, "test", exporters=[JsonLinesExporter(paths[name])]) for name in fleet}
    for batch in range(batches):
        now = t0 + batch * 250
        written: dict[str, object] = {}
        for hop, (name, (read, out)) in enumerate(fleet.items()):
            here = streams[name]
            parent = None
            for topic in read:
                got = here.checkpoint(
                    ["direction:in", f"group:{name}", f"topic:{topic}", "type:kafka"],
                    written.get(topic),  # type: ignore[arg-type]
                    weight=25,
                    payload_bytes=180.0,
                    now_ms=now + 2 + (hop * 7 + batch) % 37,
                )
                parent = parent or got
            for topic in out:
                written[topic] = here.checkpoint(
                    ["direction:out", f"topic:{topic}", "type:kafka"],
                    parent,
                    weight=25,
                    payload_bytes=180.0,
                    now_ms=now + 4 + (hop * 7 + batch) % 37,
                )
            now += 40
    for name, (read, _) in fleet.items():
        for i, topic in enumerate(read):
            tags = (f"consumer_group:{name}", "partition:0", f"topic:{topic}", "type:kafka_lag")
            streams[name].lag(tags, 3 + len(name) + i, 0.2 * (i + 1))
    for each in streams.values():
        each.flush(final=True)
    return sorted(paths.values())


if __name__ == "__main__":
    for path in write_fleet(Path(sys.argv[1] if len(sys.argv) > 1 else "fleet")):
        print(path)
