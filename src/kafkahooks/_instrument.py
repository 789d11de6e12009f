"""What every wrapped client holds: its options, dispatcher, plugins, identity and lifecycle.

The wrapped classes themselves share their code in :mod:`kafkahooks._wrapped`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kafkahooks import _fork
from kafkahooks._config import TracingMode, tracing_mode
from kafkahooks._guard import internal_error
from kafkahooks._identity import ClientIdentity
from kafkahooks._log import get_logger
from kafkahooks._wire._adapter import Role, Wiring
from kafkahooks.hooks._dispatch import DEFAULT_BUDGET_MS, HookDispatcher, flatten_hooks

if TYPE_CHECKING:
    from kafkahooks._wire._adapter import WireAdapter

_logger = get_logger(__name__)
_moved: dict[str, tuple[str, ...]] = {}
_moved_lock = _fork.Lock()


def moved_internals(adapter: WireAdapter) -> tuple[str, ...]:
    """The internals ``adapter`` relies on that its installed library no longer has, checked once
    per process, when the library's first wrapped client is built (about a millisecond). Anything
    missing: that client and every later one of the library install nothing and run as the bare
    client, and one WARNING (``client_internals_moved``) names what moved and the library version."""
    found = _moved.get(adapter.library)
    if found is not None:
        return found
    with _moved_lock:
        found = _moved.get(adapter.library)
        if found is None:
            try:
                found = tuple(adapter.check_internals())
            except Exception as exc:  # a check that cannot even run: the internals moved too far
                found = (f"check_internals raised {type(exc).__name__}",)
            _moved[adapter.library] = found
            if found:
                _logger.warning(
                    "client_internals_moved",
                    library=adapter.library,
                    version=_version_of(adapter.library),
                    missing=list(found),
                    effect="its wrapped clients install no hooks and run as the bare client",
                )
    return found


def _version_of(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


def _bootstrap_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)


OPTIONS = (
    "hooks",
    "tracing",
    "strict_hooks",
    "hook_budget_ms",
    "offload_hooks",
    "tracer_provider",
    "meter_provider",
    "data_streams",
)
"""The keyword arguments every wrapped client takes on top of its library's own:

- ``hooks``: a hook object or a (nested) list of them.
- ``tracing``: ``"off"`` | ``"hooks"`` | ``"records"`` (default ``$KAFKAHOOKS_TRACING``, else off).
- ``strict_hooks``: for tests: every hook runs inline, and the first exception a hook raises is
  raised again at the end of the application's next call on the client (``send``, ``flush``,
  ``poll``, ``getmany``, ``getone``, iteration) or of ``close()``/``stop()``.
- ``hook_budget_ms``: a user hook call longer than this (default 50) moves that hook off the I/O
  path onto its own thread and bounded queue; ``None`` keeps every hook inline, as franz-go does.
- ``offload_hooks``: run user hooks off the I/O path from the first event (a hard bound: the I/O
  path only appends to a queue).
- ``tracer_provider`` / ``meter_provider``: where spans and metrics go (default: the global ones).
- ``data_streams``: a :class:`~kafkahooks.datastreams.DataStreams`, or ``False`` to keep
  ``tracing="hooks"`` from enabling the default one.
"""


def strip_options(kwargs: dict[str, Any]) -> None:
    """Take kafkahooks' own :data:`OPTIONS` out of keyword arguments meant for the client library
    (a wrapped class whose ``__new__`` already read them)."""
    for name in OPTIONS:
        kwargs.pop(name, None)


class Instrumentation:
    """A wrapped client's hooks: the user's, plus the plugins its tracing mode asks for."""

    @classmethod
    def from_kwargs(cls, role: Role, kwargs: dict[str, Any], adapter: WireAdapter | None = None) -> Instrumentation:
        """Take kafkahooks' own :data:`OPTIONS` out of a wrapped client's keyword arguments (the rest
        go to the client library unchanged). A tracing mode ``adapter`` cannot serve is refused
        here, when the client is built, with a ``ValueError`` that says which it can."""
        options = {name: kwargs.pop(name) for name in OPTIONS if name in kwargs}
        return cls(
            options.get("hooks"),
            options.get("tracing"),
            role,
            kwargs,
            strict=bool(options.get("strict_hooks", False)),
            hook_budget_ms=options.get("hook_budget_ms", DEFAULT_BUDGET_MS),
            offload_hooks=bool(options.get("offload_hooks", False)),
            tracer_provider=options.get("tracer_provider"),
            meter_provider=options.get("meter_provider"),
            data_streams=options.get("data_streams"),
            adapter=adapter,
        )

    def __init__(
        self,
        hooks: Any,
        tracing: str | None,
        role: Role,
        config: Mapping[str, Any],
        *,
        strict: bool = False,
        hook_budget_ms: float | None = DEFAULT_BUDGET_MS,
        offload_hooks: bool = False,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        data_streams: Any = None,
        adapter: WireAdapter | None = None,
    ) -> None:
        if hook_budget_ms is not None and not hook_budget_ms > 0:  # named as the client takes it
            raise ValueError(f"hook_budget_ms must be positive (milliseconds) or None, not {hook_budget_ms!r}")
        self.mode: TracingMode = tracing_mode(tracing)
        if adapter is not None and self.mode not in adapter.tracing_modes:
            served = ", ".join(repr(m) for m in sorted(adapter.tracing_modes))
            raise ValueError(f"{adapter.library} clients cannot serve tracing={self.mode!r} (they serve {served})")
        self.role = role
        self.identity = ClientIdentity(
            role=role,
            client_id=config.get("client_id"),
            group_id=config.get("group_id"),
            bootstrap_servers=_bootstrap_text(config.get("bootstrap_servers")),
        )
        user = flatten_hooks([hooks]) if hooks is not None else []
        self.plugins: list[Any] = self._plugins(tracer_provider, meter_provider, data_streams, user)
        self.dispatch = HookDispatcher(
            [*user, *self.plugins], strict=strict, budget_ms=hook_budget_ms, offload=offload_hooks, name=role
        )
        self.wiring = Wiring(role, self.dispatch, self.identity)
        """What the client library's adapter is given: never this object itself."""
        for hook in user:
            # Plugins built by the application name the client they serve: give them its identity
            # now, before the client library's constructor opens its first connection.
            bind = getattr(hook, "bind_identity", None)
            if callable(bind):
                try:
                    bind(self.identity)
                except Exception as exc:
                    internal_error("plugin.bind_identity", exc)
        self._closed = False
        self._lock = _fork.Lock()

    def _plugins(self, tracer_provider: Any, meter_provider: Any, data_streams: Any, user: list[Any]) -> list[Any]:
        """The built-in plugins for this mode, except a kind the application passed in ``hooks=``
        (its own ``MetricsHooks``, say, replaces the built-in one rather than record everything a
        second time). A plugin that fails to import or build is left out (counted and logged):
        kafkahooks' own failures never stop the client from being constructed."""
        plugins: list[Any] = []

        def given(kind: str) -> bool:
            return any(getattr(hook, "kafkahooks_kind", None) == kind for hook in user)

        def add(name: str, build: Any) -> None:
            try:
                plugins.extend(build())
            except Exception as exc:
                internal_error(f"plugin.{name}", exc)

        def tracing() -> list[Any]:
            from kafkahooks.tracing import BrokerSpans, RecordSpans

            spans = BrokerSpans if self.mode == "hooks" else RecordSpans
            return [spans(self.identity.role, tracer_provider=tracer_provider, identity=self.identity)]

        def metrics() -> list[Any]:
            from kafkahooks.metrics import MetricsHooks

            return [MetricsHooks(self.identity, meter_provider=meter_provider)]

        def datastreams() -> list[Any]:
            from kafkahooks.datastreams import data_stream_hooks, default

            return [data_stream_hooks(data_streams or default(meter_provider), self.identity)]

        if self.mode != "off" and not given(f"spans:{self.mode}"):
            add("tracing", tracing)
        if self.mode == "hooks" and not given("metrics"):
            add("metrics", metrics)
        if (
            data_streams is not False
            and (data_streams is not None or self.mode == "hooks")
            and not given("datastreams")
        ):
            add("datastreams", datastreams)
        return plugins

    def begin_handout_scope(self) -> Any:
        """A consume call that returns lists starts (see :mod:`kafkahooks.hooks._handout`)."""
        handouts = self.dispatch.handouts
        if handouts is None:
            return None
        try:
            return handouts.begin_scope()
        except Exception as exc:
            internal_error("handout.begin_scope", exc)
            return None

    def end_handout_scope(self, token: Any) -> None:
        if token is not None:
            try:
                self.dispatch.handouts.end_scope(token)  # type: ignore[union-attr]
            except Exception as exc:
                internal_error("handout.end_scope", exc)

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
        if self.seal(client):
            self.drain()

    def seal(self, client: Any) -> bool:
        """The instant part of closing: fire ``on_client_closed`` and make later events drop and
        count. False if the client was closed already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
        self.dispatch.client_closed(client)
        self.dispatch.seal()
        return True

    def drain(self) -> None:
        """The waiting part, bounded: offloaded hooks get 2 s to finish what is queued, the export
        path 5 s to flush what this client queued (built-in plugins and the application's own
        kafkahooks plugins alike)."""
        self.dispatch.drain()
        if self.dispatch.request_log is not None or self.plugins:
            from kafkahooks.export import flush

            flush(timeout_s=5.0)
