"""kafkahooks must not make the client's own code slower: CPython keeps specializing it as for a bare client."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="CPython specializes instructions from 3.11 on (PEP 659)"
)

PER_BATCH = {
    "MessageAccumulator.add_message": {"_append_batch"},
    # Once per request: the client's send() (stamps when a request is created, before ready()
    # may connect: kgo's write wait), its connection table (hooks a connection as it is stored)
    # and a connection's send() (tells the write which request its frame carries). A few tens of
    # nanoseconds per request of several hundred microseconds, never per record.
    "SendProduceReqHandler.do": {"(send)"},
    "AIOKafkaClient.send": {"(send)", "BINARY_SUBSCR_DICT"},
}
"""Call sites kafkahooks overrides on purpose, once per batch or request (never per record)."""


def _specialized(side: str, bootstrap: str, topic: str) -> dict[str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests._specialization_probe", side, bootstrap, topic],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert 0 == proc.returncode, proc.stderr[-3000:]
    found: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return found


def test_aiokafka_hot_paths_stay_specialized(bootstrap: str, make_topic: Callable[..., str]) -> None:
    """Every instruction of aiokafka's per-record and per-request code that CPython specializes for a
    bare client is specialized for a wrapped one (tracing="hooks") too: no materialized instance
    dict, no method name shadowed by an instance attribute (each cost every record a few percent)."""
    bare = _specialized("bare", bootstrap, make_topic())
    wrapped = _specialized("wrapped", bootstrap, make_topic())
    assert sum(len(v) for v in bare.values()) > 50, bare  # the probe saw real, specialized code
    lost = {}
    for function, instructions in bare.items():
        # An instruction is "offset opname (argument)"; what matters is that it is specialized at
        # all (a site that also sees kafkahooks' one-per-batch stand-in may pick another variant).
        have = {i.split()[0] for i in wrapped[function]}
        missing = [
            i
            for i in instructions
            if i.split()[0] not in have and not any(name in i for name in PER_BATCH.get(function, ()))
        ]
        if missing:
            lost[function] = missing
    assert {} == lost
