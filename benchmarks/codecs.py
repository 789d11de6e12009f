"""What reading a compressed batch costs kafkahooks, per codec, in a warm loop: the Produce path
(a producer's own batch, its uncompressed size read from the codec's framing) against the walk
that decompresses it (what the Produce path did before, and what a fetched batch still gets).

Run: ``.venv/bin/python benchmarks/codecs.py [--records 148] [--value-size 100] [--json FILE]``
(a few seconds; needs the ``codecs`` extra, in ``bench``). Batches are built by each client's own
batch builder with its own codec; values are half random hex, half repeated, so they compress as
records do, not to nothing. Each figure is the best of 5 repeats of ``--number`` calls, in µs.

Columns:

- ``produce``: ``_batches.produced``, what a wrapped producer runs per batch it sends, no header
  wanted (the built-in plugins want none on the producer side);
- ``walk``: ``_batches.walk`` with the client's decompressor, no header wanted: the size by
  decompressing (before 2026-12-07 the Produce path of snappy, lz4 and zstd);
- ``walk+headers``: the same with the data-stream and trace-context keys wanted, what a consumer
  with ``tracing="hooks"`` runs per fetched batch (one decompression for size and first record).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import timeit
from typing import Any

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
KEYS = frozenset({"dd-pathway-ctx-base64", "dd-pathway-ctx", "traceparent", "tracestate"})


def batch(client: str, codec: int, records: int, value_size: int) -> bytes:
    """One v2 batch as ``client``'s producer builds it, its first record carrying a pathway header."""
    values = [(os.urandom(value_size // 4).hex().encode() + b"x" * value_size)[:value_size] for _ in range(records)]
    first = [("dd-pathway-ctx-base64", b"ExAMPLEpathwayCTXbase64AA")]
    if client == "aiokafka":
        from aiokafka.record.default_records import DefaultRecordBatchBuilder as AioBuilder

        aio = AioBuilder(
            magic=2,
            compression_type=codec,
            is_transactional=0,
            producer_id=-1,
            producer_epoch=-1,
            base_sequence=-1,
            batch_size=1 << 26,
        )
        for i, value in enumerate(values):
            aio.append(i, timestamp=1_700_000_000_000 + i, key=None, value=value, headers=first if i == 0 else [])
        return bytes(aio.build())
    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, 1 << 26)
    for i, value in enumerate(values):
        builder.append(i, 1_700_000_000_000 + i, None, value, first if i == 0 else [])
    return bytes(builder.build())


def best_us(call: Any, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def paths_us(data: bytes, decompress: Any, number: int) -> dict[str, float]:
    """The three paths' µs per call on ``data`` (see the module's docs)."""
    from kafkahooks._wire import _batches

    no_keys: frozenset[str] = frozenset()

    def produce() -> Any:
        return _batches.produced(data, no_keys, False) or _batches.walk(data, decompress)

    def walk() -> Any:
        return _batches.walk(data, decompress, no_keys)

    def walk_headers() -> Any:
        return _batches.walk(data, decompress, KEYS)

    return {
        "produce_us": best_us(produce, number),
        "walk_us": best_us(walk, number),
        "walk_headers_us": best_us(walk_headers, number),
    }


def measure(records: int, value_size: int, number: int) -> list[dict[str, Any]]:
    from aiokafka import codec as aiokafka_codec
    from kafka import codec as kafka_codec

    from kafkahooks._wire import _batches
    from kafkahooks._wire._shared import decompressor

    rows = []
    for client, codec_module in (("aiokafka", aiokafka_codec), ("kafka-python", kafka_codec)):
        decompress = decompressor(codec_module)
        for name, codec in CODECS.items():
            data = batch(client, codec, records, value_size)
            rows.append(
                {
                    "client": client,
                    "codec": name,
                    "records": records,
                    "batch_bytes": len(data),
                    "framed": _batches.produced(data, frozenset(), False) is not None,
                    **paths_us(data, decompress, number),
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=148, help="records per batch (148: the produce benchmark's)")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--number", type=int, default=2_000, help="calls per repeat")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    rows = measure(args.records, args.value_size, args.number)
    print(f"{'client':13} {'codec':7} {'bytes':>8} {'framed':>6} {'produce':>8} {'walk':>8} {'walk+headers':>12}  (µs)")
    for r in rows:
        print(
            f"{r['client']:13} {r['codec']:7} {r['batch_bytes']:8} {'yes' if r['framed'] else 'no':>6} "
            f"{r['produce_us']:8.2f} {r['walk_us']:8.2f} {r['walk_headers_us']:12.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join(sys.argv), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
