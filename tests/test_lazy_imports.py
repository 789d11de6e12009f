"""A wrapped client loads only what it uses: the collector walks every object a module leaves."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
import aiokafka, kafka
before = set(sys.modules)
import kafkahooks.aiokafka, kafkahooks.kafka
from kafkahooks._instrument import Instrumentation
Instrumentation(None, {tracing!r}, "producer", {{}})
Instrumentation(None, {tracing!r}, "consumer", {{"group_id": "g"}})
print(json.dumps(sorted({{m.split(".")[0] for m in set(sys.modules) - before}})))
"""

UNUSED = {"structlog", "rich", "pygments", "google", "msgpack", "ddsketch", "click"}
"""Loaded on first use only: the logger (structlog, and rich through it), the Datadog agent's
and the JSON-lines exporter's formats (msgpack, protobuf, ddsketch), the command line."""


@pytest.mark.parametrize("tracing", ["off", "hooks"])
def test_a_wrapped_client_loads_no_unused_package(tracing: str) -> None:
    """Importing both wrapped clients and building their instrumentation (tracing off, or every
    built-in plugin) imports none of the packages kafkahooks needs only to log, to talk to a
    Datadog agent, to write sketches or to run its command line."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(tracing=tracing)], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "kafkahooks" in loaded
    assert set() == loaded & UNUSED


def test_the_first_log_line_loads_structlog(capsys: pytest.CaptureFixture[str]) -> None:
    """The lazy logger is a structlog logger once used: events reach structlog's output."""
    from kafkahooks._log import get_logger

    get_logger("kafkahooks.test").warning("lazy_logger_used", answer=42)
    assert "lazy_logger_used" in capsys.readouterr().out
