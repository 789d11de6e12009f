"""``benchmarks/collector.py`` counts what it says: the collector's passes per generation for
one-record batches by how many a Fetch response holds, with tracing="hooks" and no client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_bigger_response_brings_on_more_collector_passes() -> None:
    """A response handed out and passed to the worker a hundred batches at a time leaves the
    young generation nearly empty; one of 2 000 batches keeps its records alive past young
    passes, which then run many times as often, and middle ones with them. Each batch of a walked
    response keeps at least its record and the Fetch request's entry for it tracked."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "collector.py"),
            "--responses",
            "100,2000",
            "--batches",
            "20000",
            "--ballast",
            "1000",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT / "benchmarks",
    )
    small, big = json.loads(done.stdout)
    assert (100, 2000) == (small["batches_per_response"], big["batches_per_response"])
    assert 20_000 == small["batches"] == big["batches"]
    assert big["passes"][0] >= 10 * max(small["passes"][0], 1)
    assert big["passes"][1] > small["passes"][1]
    assert small["tracked_alive_per_batch"] >= 2
    assert all(s >= 0 for s in small["gc_us_per_batch"] + big["gc_us_per_batch"])
