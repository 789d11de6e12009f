"""What every wrapped client holds: its dispatcher, tracing mode, identity and lifecycle."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

from kafkahooks._config import TracingMode, tracing_mode
from kafkahooks._identity import ClientIdentity
from kafkahooks.hooks._dispatch import HookDispatcher, flatten_hooks

Role = Literal["producer", "consumer"]


def _bootstrap_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)


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
        tracer_provider: Any = None,
        data_streams: Any = None,
    ) -> None:
        self.mode: TracingMode = tracing_mode(tracing)
        self.role = role
        self.identity = ClientIdentity(
            role=role,
            client_id=config.get("client_id"),
            group_id=config.get("group_id"),
            bootstrap_servers=_bootstrap_text(config.get("bootstrap_servers")),
        )
        self.plugins: list[Any] = []
        if self.mode != "off":
            from kafkahooks.tracing import plugins_for

            self.plugins = plugins_for(self.mode, self.identity, {"tracer_provider": tracer_provider})
        streams = data_streams
        if streams is None and self.mode == "hooks":
            from kafkahooks.datastreams import default

            streams = default()
        if streams:
            from kafkahooks.datastreams import data_stream_hooks

            self.plugins.append(data_stream_hooks(streams, self.identity))
        user = flatten_hooks([hooks]) if hooks is not None else []
        self.dispatch = HookDispatcher([*user, *self.plugins], strict=strict)
        self._closed = False
        self._lock = threading.Lock()

    @property
    def installed(self) -> bool:
        """Whether anything is installed on the connections."""
        return self.dispatch.has_broker_hooks

    def opened(self, client: Any, client_id: str | None) -> None:
        """The client is constructed: record the client id it resolved, fire ``on_new_client``."""
        if client_id:
            self.identity.client_id = client_id
        self.dispatch.new_client(client)

    def closed(self, client: Any) -> None:
        """Fire ``on_client_closed`` once, however often the client is closed, and flush telemetry."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.dispatch.client_closed(client)
        if self.plugins:
            from kafkahooks.export import flush

            flush(timeout_s=5.0)
