"""The contract between kafkahooks and one client library (:class:`WireAdapter`).

A wrapped client class knows kafkahooks' options and lifecycle; its adapter knows the library:
every private attribute of aiokafka or kafka-python that kafkahooks touches is read inside
``_wire/aiokafka/`` or ``_wire/kafka_python/``, behind these methods, and each adapter's
:meth:`~WireAdapter.check_internals` names what a library release moved. An adapter gets only
what it serves (:class:`Wiring`: the client's role, dispatcher and identity), never the wrapped
client's instrumentation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

if TYPE_CHECKING:
    from kafkahooks._identity import ClientIdentity
    from kafkahooks.hooks._dispatch import HookDispatcher
    from kafkahooks.hooks._handout import HandOutTracker

Role = Literal["producer", "consumer"]


class Wiring(NamedTuple):
    """What an adapter wires a client to."""

    role: Role
    dispatch: HookDispatcher
    """Where the client's connections, batches and hand-outs report."""
    identity: ClientIdentity
    """The client's identity, whose cluster id the adapter keeps current."""


class WireAdapter(Protocol):
    """What kafkahooks needs from a client library, and what it can serve there."""

    library: str
    """The client library's distribution name (``"aiokafka"``, ``"kafka-python"``)."""
    tracing_modes: frozenset[str]
    """The ``tracing=`` modes this adapter can serve; others are refused when the client is built."""

    def prepare(self, wiring: Wiring, configs: dict[str, Any]) -> None:
        """Before the library builds the client: adjust its configuration (kafka-python takes a
        client factory whose connections report to the dispatcher)."""

    def install(self, client: Any, wiring: Wiring) -> str | None:
        """After the library built ``client`` (a producer or a consumer): hook its connections
        when the dispatcher has broker hooks, the producer's batch and record header injection,
        the cluster id watch; return the client id the library resolved."""

    def consumer_started(self, consumer: Any, tracker: HandOutTracker) -> None:
        """The consumer can fetch: report its hand-outs, per record batch, to ``tracker``."""

    def consumer_closed(self, consumer: Any) -> None:
        """The consumer closed: let the batches it held count what was handed out of them."""

    def check_internals(self) -> list[str]:
        """Names this adapter relies on that the installed library no longer has (empty: fine)."""
