"""Hook-level tracing: back-dated broker spans and per-batch trace context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def plugins_for(mode: str, role: str, config: Mapping[str, Any]) -> list[Any]:
    """The hooks a wrapped client installs for a tracing mode."""
    return []
