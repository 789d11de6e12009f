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
    young generation nearly empty; one of 2 000 batches keeps its records alive past young
    passes, which then run many times as often, and middle ones with them. After the young
    passes during a walk, each batch still keeps two tracked objects: its record and the Fetch
    request's entry for it; the experiment that untracks them leaves none."""
    small, big = collector("--responses", "100,2000", "--json")
    assert (100, 2000) == (small["batches_per_response"], big["batches_per_response"])
    assert 20_000 == small["batches"] == big["batches"]
    assert big["passes"][0] >= 10 * max(small["passes"][0], 1)
    assert big["passes"][1] > small["passes"][1]
    assert all(w <= p for w, p in zip(big["worker_passes"], big["passes"], strict=True))
    assert 1.9 <= big["tracked_alive_per_batch"] < 3
    assert all(s >= 0 for s in small["gc_us_per_batch"] + big["gc_us_per_batch"])
    (untracked,) = collector("--responses", "2000", "--untrack", "record,entry,handout", "--json")
    assert ["entry", "handout", "record"] == untracked["untracked"]
    assert untracked["tracked_alive_per_batch"] < 0.5
    # Untracked objects still count as allocations: as many young passes (give or take what the
    # span processor's thread allocates meanwhile).
    assert abs(big["passes"][0] - untracked["passes"][0]) <= big["passes"][0] // 20
