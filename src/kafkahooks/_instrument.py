"""What every wrapped client holds: its dispatcher, tracing mode and lifecycle bookkeeping."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

from kafkahooks._config import TracingMode, tracing_mode
from kafkahooks.hooks._dispatch import HookDispatcher, flatten_hooks

Role = Literal["producer", "consumer"]


def _plugins(mode: TracingMode, role: Role, config: Mapping[str, Any]) -> list[Any]:
    if mode == "off":
        return []
    from kafkahooks.tracing import plugins_for

    return plugins_for(mode, role, config)


class Instrumentation:
    """A wrapped client's hooks: the user's, plus the plugins its tracing mode asks for."""

    def __init__(
        self,
        hooks: Any,
        tracing: str | None,
        role: Role,
        config: Mapping[str, Any],
        *,
        strict: bool = False,
    ) -> None:
        self.mode: TracingMode = tracing_mode(tracing)
        self.role = role
        user = flatten_hooks([hooks]) if hooks is not None else []
        self.dispatch = HookDispatcher([*user, *_plugins(self.mode, role, config)], strict=strict)
        self._closed = False
        self._lock = threading.Lock()

    @property
    def installed(self) -> bool:
        """Whether anything is installed on the connections."""
        return self.dispatch.has_broker_hooks

    def opened(self, client: Any) -> None:
        self.dispatch.new_client(client)

    def closed(self, client: Any) -> None:
        """Fire ``on_client_closed`` once, however often the client is closed."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.dispatch.client_closed(client)
