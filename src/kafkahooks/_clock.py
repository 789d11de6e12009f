"""The clocks kafkahooks reads, in one place so tests can swap them.

Hot paths call ``_clock.monotonic_ns()`` (not a local alias) so a test can replace the attribute.
"""

from __future__ import annotations

import time

monotonic_ns = time.monotonic_ns
"""Monotonic clock for durations, in nanoseconds."""

time_ns = time.time_ns
"""Wall clock (Unix epoch) in nanoseconds, for span and checkpoint timestamps."""
