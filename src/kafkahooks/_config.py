"""Settings shared by the wrapped clients."""

from __future__ import annotations

import os
from typing import Literal

TracingMode = Literal["off", "hooks", "records"]
TRACING_MODES: tuple[TracingMode, ...] = ("off", "hooks", "records")
TRACING_ENV = "KAFKAHOOKS_TRACING"


def tracing_mode(value: str | None) -> TracingMode:
    """The tracing mode to use: ``value`` if given, else ``$KAFKAHOOKS_TRACING``, else ``"off"``.

    Raises ``ValueError`` for anything but ``"off"``, ``"hooks"`` or ``"records"`` (case-insensitive),
    at construction time, so a typo never silently disables tracing.
    """
    raw = value if value is not None else os.environ.get(TRACING_ENV, "")
    mode = raw.strip().lower() or "off"
    if mode not in TRACING_MODES:
        source = "tracing=" if value is not None else f"${TRACING_ENV}="
        raise ValueError(f"{source}{raw!r} is not one of {', '.join(TRACING_MODES)}")
    return mode
