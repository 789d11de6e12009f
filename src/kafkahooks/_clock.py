"""The clocks kafkahooks reads, in one place: every duration and timestamp comes from here.

Hot paths call ``_clock.monotonic_ns()`` (not a local alias), so replacing the attribute (with
``unittest.mock.patch.object``, say) changes every reading.
"""

from __future__ import annotations

import time

monotonic_ns = time.monotonic_ns
"""Monotonic clock for durations, in nanoseconds."""

time_ns = time.time_ns
"""Wall clock (Unix epoch) in nanoseconds, for span and checkpoint timestamps."""
