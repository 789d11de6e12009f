"""``benchmarks/codecs.py`` times what it says: each client's own compressed batches, through the
Produce path that reads their framing and the walk that decompresses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests._benchmarks import load

ROOT = Path(__file__).resolve().parents[1]


def test_every_codec_of_both_clients_is_timed_through_both_paths(tmp_path: Path) -> None:
    """One row per client and codec; the Produce path reads the framing of every codec but
    aiokafka's lz4 (its frames keep no content size), and the batches really are compressed."""
    out = tmp_path / "codecs.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "codecs.py"),
            "--records",
            "40",
            "--number",
            "3",
            "--json",
            f"{out}",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = json.loads(out.read_text())["rows"]
    assert {(c, k) for c in ("aiokafka", "kafka-python") for k in load("codecs").CODECS} == {
        (r["client"], r["codec"]) for r in rows
    }
    assert {(r["client"], r["codec"]) for r in rows if not r["framed"]} == {("aiokafka", "lz4")}
    plain = {r["client"]: r["batch_bytes"] for r in rows if r["codec"] == "none"}
    assert all(r["batch_bytes"] < plain[r["client"]] for r in rows if r["codec"] != "none")
    assert all(r[k] > 0 for r in rows for k in ("produce_us", "walk_us", "walk_headers_us"))
    assert "walk+headers" in done.stdout
