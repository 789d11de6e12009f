"""The flight recorder: the last N requests of one client, with the four timings, kept in a ring.

It takes the same per-request path as kafkahooks' built-in plugins: the connection's tap records
each request's timings, bytes and batches anyway; the export worker hands finished requests to
the recorder in passes, and the recorder keeps a tuple of numbers per request. Nothing runs on
the I/O path for it, and it holds at most ``capacity`` requests (0.2-0.3 KB each: about 3 MB for
the default 10 000).

A dump is JSON lines: one header line, then one line per request, oldest first (schema below,
version 1). A dump never holds header values, record keys or values, or error messages: only
numbers, the broker's address, the request's name, and an error's type.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kafkahooks import _clock, _fork
from kafkahooks._identity import ClientIdentity
from kafkahooks.hooks import ALL_KEYS, key_name
from kafkahooks.hooks._records import NUM_RECORDS, Request
from kafkahooks.hooks._requests import RequestNeeds
from kafkahooks.latency._format import SCHEMA, VERSION


class FlightRecorder:
    """Keeps the last ``capacity`` requests of the client it is given to (``hooks=[recorder]``).

    ``dump(path)`` writes them as JSON lines; ``breakdown()`` summarises them per broker and
    request key with a verdict on which part of the request is slow (:func:`kafkahooks.latency.breakdown`).
    One recorder per client: each request is recorded with the client's id and role.
    """

    kafkahooks_kind = "flight-recorder"
    """Passed in ``hooks=``, an instance replaces another of this kind."""
    kafkahooks_inline = True
    """Only appends to its ring, on the export worker: never timed or offloaded."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.maxlen = capacity
        """How many requests the ring keeps (the oldest go first)."""
        self.identity = ClientIdentity()
        self.recorded = 0
        """Requests recorded since the recorder was made (kept or since pushed out)."""
        self._ring: deque[tuple[Any, ...]] = deque(maxlen=capacity)
        self._lock = _fork.Lock()

    def __repr__(self) -> str:
        return f"<FlightRecorder {len(self._ring)}/{self.maxlen} requests of {self.identity.client_id!r}>"

    def __len__(self) -> int:
        return len(self._ring)

    def bind_identity(self, identity: ClientIdentity) -> None:
        """The client this recorder serves (called once, when the client is built)."""
        self.identity = identity

    @property
    def request_needs(self) -> RequestNeeds:
        return RequestNeeds(ALL_KEYS, produce_batches=True, fetch_batches=True)

    # -- the export worker ------------------------------------------------------------------------

    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        offset = _clock.time_ns() - _clock.monotonic_ns()  # the tap's monotonic stamps -> wall clock
        # Numbers and strings only: the collector untracks such tuples, so a full ring adds nothing
        # to the client's garbage-collection passes.
        rows = []
        for r in requests:
            end = r.read_end_ns or r.write_end_ns or r.created_ns
            partitions = records = 0
            batches = r.batches
            if batches:
                partitions = len(batches)
                records = sum(info.num_records for info in batches.values())
            fetched = r.fetched_raw
            if fetched:
                partitions = len({(t, p) for t, p, _ in fetched})
                records = sum(item[2][NUM_RECORDS] for item in fetched)
            err = r.write_err or r.read_err
            rows.append(
                (
                    end + offset,
                    r.key,
                    r.meta.node_id,
                    r.meta.host,
                    r.meta.port,
                    r.write_wait_ns,
                    r.time_to_write_ns,
                    r.read_wait_ns,
                    r.time_to_read_ns,
                    r.bytes_written,
                    r.bytes_read,
                    partitions,
                    records,
                    None if err is None else type(err).__qualname__,
                )
            )
        with self._lock:
            self._ring.extend(rows)
            self.recorded += len(rows)

    # -- the application --------------------------------------------------------------------------

    def records(self, flush: bool = True) -> list[dict[str, Any]]:
        """The kept requests, oldest first, as dump lines (see :data:`FIELDS`). With ``flush``,
        the export worker first hands over what it has (waiting at most a second)."""
        if flush:
            from kafkahooks import export

            export.flush(timeout_s=1.0)
        with self._lock:
            rows = list(self._ring)
        client_id, role = self.identity.client_id, self.identity.role
        out = []
        for end, key, broker, host, port, ww, ttw, rw, ttr, written, read, partitions, records, error in rows:
            out.append(
                {
                    "end_ns": end,
                    "client_id": client_id,
                    "role": role,
                    "key": key_name(key),
                    "broker": broker,
                    "host": host,
                    "port": port,
                    "write_wait_ns": ww,
                    "time_to_write_ns": ttw,
                    "read_wait_ns": rw,
                    "time_to_read_ns": ttr,
                    "bytes_written": written,
                    "bytes_read": read,
                    "partitions": partitions,
                    "records": records,
                    "error": error,
                }
            )
        return out

    def breakdown(self, slowest: int = 10) -> Any:
        """:func:`kafkahooks.latency.breakdown` of the kept requests: per broker and key, the
        percentiles of each part, a verdict, and the ``slowest`` requests."""
        from kafkahooks.latency._analysis import breakdown

        return breakdown(self.records(), slowest)

    def dump(self, path: str | os.PathLike[str], flush: bool = True) -> Path:
        """Write the kept requests to ``path`` as JSON lines (a header line, then one line per
        request, oldest first); returns the path. ``{pid}`` and ``{time}`` in the path are
        replaced by the process id and the Unix time, for dumps taken on a signal."""
        rows = self.records(flush=flush)
        target = Path(str(path).format(pid=os.getpid(), time=int(time.time())))
        header = {
            "schema": SCHEMA,
            "version": VERSION,
            "dumped_at_ns": time.time_ns(),
            "client_id": self.identity.client_id,
            "role": self.identity.role,
            "capacity": self.maxlen,
            "recorded": self.recorded,
            "kept": len(rows),
        }
        tmp = target.with_name(target.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps(header) + "\n")
            for row in rows:
                f.write(json.dumps(row) + "\n")
        tmp.replace(target)  # a reader never sees half a dump
        return target

    def dump_on_signal(self, path: str | os.PathLike[str], signum: int | None = None) -> None:
        """Dump to ``path`` whenever the process gets ``signum`` (``SIGUSR1`` by default), for a
        service that cannot be changed live: ``kill -USR1 <pid>``. The dump is written on a thread
        of its own, not in the signal handler. Call from the main thread (Python's rule for
        signal handlers); a handler already installed for the signal is still called after."""
        import signal

        number = signal.SIGUSR1 if signum is None else signum
        previous = signal.getsignal(number)

        def handler(sig: int, frame: Any) -> None:
            threading.Thread(target=self._dump_quietly, args=(path,), name="kafkahooks-dump", daemon=True).start()
            if callable(previous):
                previous(sig, frame)

        signal.signal(number, handler)

    def _dump_quietly(self, path: str | os.PathLike[str]) -> None:
        from kafkahooks._log import get_logger

        try:
            written = self.dump(path)
        except Exception as exc:  # never let a failed dump reach the application
            get_logger("kafkahooks.latency").warning("flight_recorder_dump_failed", error=repr(exc)[:200])
        else:
            get_logger("kafkahooks.latency").info("flight_recorder_dumped", path=str(written))
