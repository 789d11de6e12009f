"""Datadog's own test agent (``ddapm-test-agent``), run on loopback ports for the interop tests.

It pins an older ``opentelemetry-proto`` than kafkahooks' OTLP exporter needs, so it lives in an
environment of its own: ``$KAFKAHOOKS_TEST_AGENT`` (the ``ddapm-test-agent`` executable) when set,
else ``.venv-agent`` at the repository root, made on first use from the package index.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest

from kafkahooks.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
AGENT_REQUIREMENT = "ddapm-test-agent==1.69.1"
AGENT_ENV = "KAFKAHOOKS_TEST_AGENT"


def agent_executable() -> str:
    """The test agent's executable, installed into ``.venv-agent`` if need be."""
    given = os.environ.get(AGENT_ENV, "").strip()
    if given:
        return given
    venv = ROOT / ".venv-agent"
    exe = venv / "bin" / "ddapm-test-agent"
    stamp = venv / "kafkahooks-requirement.txt"
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == AGENT_REQUIREMENT:
        return str(exe)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--progress-bar", "off", "-q", AGENT_REQUIREMENT],
        check=True,
        timeout=900,
    )
    stamp.write_text(AGENT_REQUIREMENT + "\n")
    return str(exe)


@dataclass
class DatadogTestAgent:
    """A running test agent: its APM port (``url``) and OTLP/HTTP port (``otlp_url``)."""

    url: str
    otlp_url: str

    def get(self, path: str, base: str | None = None) -> Any:
        """GET a JSON answer from the agent's APM port (or ``base``)."""
        with urllib.request.urlopen((base or self.url) + path, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def clear(self) -> None:
        for base in (self.url, self.otlp_url):
            with urllib.request.urlopen(base + "/test/session/clear", timeout=10):
                pass

    def requests(self, path: str) -> list[dict[str, Any]]:
        """Requests the agent received on ``path`` since the last clear, oldest first."""
        return [r for r in reversed(self.get("/test/session/requests")) if r["url"].split("?")[0].endswith(path)]

    def pipeline_stats(self) -> list[dict[str, Any]]:
        """Every ``/v0.1/pipeline_stats`` payload received, decoded (gzip, msgpack)."""
        payloads = []
        for request in self.requests("/v0.1/pipeline_stats"):
            body = base64.b64decode(request["body"])
            if body[:2] == b"\x1f\x8b":  # as sent (the agent's web server may have inflated it already)
                body = gzip.decompress(body)
            payloads.append(msgpack.unpackb(body))
        return payloads

    def wait_for(self, what: Any, timeout_s: float = 30.0) -> Any:
        """Poll ``what()`` until it returns something truthy (exporters send on their own clocks)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = what()
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


@pytest.fixture(scope="session")
def test_agent() -> Iterator[DatadogTestAgent]:
    exe = agent_executable()
    port, otlp_http, otlp_grpc = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "OTEL_"))}
    process = subprocess.Popen(
        [
            exe,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--otlp-http-port",
            str(otlp_http),
            "--otlp-grpc-port",
            str(otlp_grpc),
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    agent = DatadogTestAgent(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{otlp_http}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                agent.get("/info")
                agent.get("/test/session/requests", agent.otlp_url)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                    raise RuntimeError(f"the test agent did not start: {stderr[-2000:]}") from None
                time.sleep(0.2)
        yield agent
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def agent(test_agent: DatadogTestAgent) -> DatadogTestAgent:
    """The session's test agent, with nothing received yet."""
    test_agent.clear()
    return test_agent
