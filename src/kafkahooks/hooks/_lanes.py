"""Keeping slow user hooks off the I/O path.

franz-go calls hooks inline and documents a slow hook as the user's problem: it stalls the
connection, and a stalled consumer misses its heartbeats and is thrown out of its group. Here a
user hook is still called inline (so it sees events as they happen, on the client's own thread,
with the caller's context), but each call is timed; the first call that takes longer than the
dispatcher's budget moves that hook, for the rest of its client's life, onto a :class:`HookLane`:
its own thread, fed through a bounded queue that drops (and counts) instead of blocking. From then
on the I/O path pays one queue append per event. ``offload_hooks=True`` starts every user hook
there, so not even the first call can stall the client.

Hooks that must answer synchronously (``inject_batch_headers``) cannot move: once their hook is
offloaded they are skipped, and counted.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from kafkahooks._log import RateLimitedLog, get_logger
from kafkahooks._selfstats import counter

_logger = get_logger("kafkahooks.hooks")
_log = RateLimitedLog(_logger, 60.0)
_offloaded = counter("hooks_offloaded", "User hooks moved off the I/O path because a call exceeded the hook budget")
_dropped = counter(
    "hook_events_dropped", "Events for offloaded hooks dropped: the hook's queue was full, or its client had closed"
)
_skipped = counter("hook_calls_skipped", "Synchronous hook calls skipped because their hook was offloaded")

_lanes: weakref.WeakSet[HookLane] = weakref.WeakSet()

LANE_CAPACITY = 10_000
"""Events an offloaded hook may have waiting before new ones are dropped."""

Failed = Callable[[Any, str, BaseException], None]


class HookLane:
    """One offloaded hook's thread and bounded queue.

    ``submit`` never blocks: past ``capacity`` waiting events, or after :meth:`close`, the event is
    dropped and counted in :attr:`dropped`. Events run in submission order on a daemon thread that
    starts on demand and exits after ``idle_s`` without work (so an unclosed client leaks nothing).
    """

    def __init__(self, name: str, failed: Failed, capacity: int = LANE_CAPACITY, idle_s: float = 5.0) -> None:
        self.name = name
        self.capacity = capacity
        self.idle_s = idle_s
        self.dropped = 0
        """Events refused (queue full or lane closed)."""
        self.closed = False
        self._failed = failed
        self._items: deque[Any] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running = False
        _lanes.add(self)

    def __len__(self) -> int:
        return len(self._items)

    def submit(self, fn: Any, event: str, args: tuple[Any, ...]) -> None:
        items = self._items
        if self.closed or len(items) >= self.capacity:
            self._drop(1)
            return
        items.append((fn, event, args))
        wake = self._wake
        if not wake.is_set():
            wake.set()
        if not self._running:
            self._start()

    def _drop(self, n: int) -> None:
        with self._lock:
            self.dropped += n
            dropped = self.dropped
        _dropped.add(n)
        _log.warning(self.name, "hook_events_dropped", hook=self.name, dropped=dropped, capacity=self.capacity)

    def _start(self) -> None:
        with self._lock:
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._loop, name=f"kafkahooks-hook-{self.name}"[:60], daemon=True).start()

    def _loop(self) -> None:
        items, wake = self._items, self._wake
        while True:
            wake.clear()
            while items:
                item = items.popleft()
                if isinstance(item, threading.Event):
                    item.set()
                    continue
                if self.closed:
                    self._drop(1)
                    continue
                fn, event, args = item
                try:
                    fn(*args)
                except BaseException as exc:  # nobody to propagate to on this thread: count it
                    self._failed(fn, event, exc)
            if not wake.wait(self.idle_s):
                with self._lock:
                    # Set before looking, so a submit that appends after the look starts a new thread.
                    self._running = False
                    if not items:
                        return
                    self._running = True

    def flush(self, timeout_s: float) -> bool:
        """Wait until every event submitted so far has run; False if that took over ``timeout_s``."""
        if not self._items and not self._running:
            return True
        marker = threading.Event()
        self._items.append(marker)
        self._wake.set()
        if not self._running:
            self._start()
        return marker.wait(max(timeout_s, 0.0))

    def close(self, timeout_s: float) -> bool:
        """Run what is queued (up to ``timeout_s``), then refuse new events; whatever a hung hook
        left waiting is dropped and counted once the hook returns."""
        done = self.flush(timeout_s)
        self.closed = True
        self._wake.set()
        return done

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and its locks may be held: start afresh, and
        # forget the parent's queued events (the parent runs them).
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._items.clear()
        self._running = False


def _after_fork_in_child() -> None:
    for lane in list(_lanes):
        lane._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class HookSlot:
    """One user hook object in one dispatcher: inline and timed until a call exceeds ``budget_ns``,
    then on its own :class:`HookLane`."""

    __slots__ = ("budget_ns", "failed", "lane", "name", "reason")

    def __init__(self, name: str, budget_ns: int, failed: Failed) -> None:
        self.name = name
        self.budget_ns = budget_ns
        self.failed = failed
        self.lane: HookLane | None = None
        self.reason: tuple[str, int] | None = None
        """Why the hook was offloaded: (event, duration of that call in ns); ``("offload_hooks", 0)``
        when the client asked for it."""

    def offload(self, event: str, took_ns: int) -> None:
        if self.lane is not None:
            return
        self.reason = (event, took_ns)
        self.lane = HookLane(self.name, self.failed)
        if took_ns:
            _offloaded.add()
            _logger.warning(
                "hook_offloaded",
                hook=self.name,
                hook_event=event,
                took_ms=round(took_ns / 1e6, 3),
                budget_ms=self.budget_ns / 1e6,
            )


class GuardedCall:
    """A user hook's method as the dispatcher calls it: timed inline, or queued once offloaded."""

    __slots__ = ("event", "fn", "slot")

    def __init__(self, fn: Callable[..., Any], event: str, slot: HookSlot) -> None:
        self.fn = fn
        self.event = event
        self.slot = slot

    def __call__(self, *args: Any) -> None:
        slot = self.slot
        lane = slot.lane
        if lane is not None:
            lane.submit(self.fn, self.event, args)
            return
        start = time.perf_counter_ns()
        try:
            self.fn(*args)
        finally:
            took = time.perf_counter_ns() - start
            if took > slot.budget_ns:
                slot.offload(self.event, took)


class GuardedSyncCall(GuardedCall):
    """A hook method whose answer the client waits for: timed inline; skipped (and counted) once
    its hook is offloaded, since it cannot be answered later."""

    __slots__ = ()

    def __call__(self, *args: Any) -> Any:
        slot = self.slot
        if slot.lane is not None:
            _skipped.add()
            return None
        start = time.perf_counter_ns()
        try:
            return self.fn(*args)
        finally:
            took = time.perf_counter_ns() - start
            if took > slot.budget_ns:
                slot.offload(self.event, took)
