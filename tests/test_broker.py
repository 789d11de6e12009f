"""The embedded broker never outlives the process that started it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

OWNER = """
import sys, time
from kafkahooks.broker import EmbeddedBroker
broker = EmbeddedBroker().start()
print(broker.pid, broker.port, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_broker_stops_when_its_owner_is_killed(how: signal.Signals) -> None:
    """A process that started an EmbeddedBroker and is then killed (SIGTERM or SIGKILL: no atexit
    handler runs) does not leave the broker behind holding its port."""
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        broker_pid, port = (int(v) for v in owner.stdout.readline().split())
        assert _alive(broker_pid)
        owner.send_signal(how)
        owner.wait(10)
        deadline = time.monotonic() + 10
        while _alive(broker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(broker_pid), f"broker {broker_pid} outlived its owner (port {port})"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)


def test_a_broker_started_by_the_test_process_still_runs_and_stops() -> None:
    """The parent-death setting changes nothing for a live owner: the broker answers, then stops."""
    from kafkahooks.broker import EmbeddedBroker, api_versions_ok

    with EmbeddedBroker() as broker:
        assert api_versions_ok(broker.host, broker.port)
        pid = broker.pid
        assert pid is not None
        assert _alive(pid)
    assert not _alive(pid)
