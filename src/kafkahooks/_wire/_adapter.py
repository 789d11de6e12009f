"""The contract between kafkahooks and one client library (:class:`WireAdapter`).

A wrapped client class knows kafkahooks' options and lifecycle; its adapter knows the library:
every private attribute of aiokafka or kafka-python that kafkahooks touches is read inside
``_aiokafka`` or ``_kafka_python``, behind these methods, and each adapter's
:meth:`~WireAdapter.check_internals` names what a library release moved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kafkahooks._instrument import Instrumentation
    from kafkahooks.hooks._handout import HandOutTracker


class WireAdapter(Protocol):
    """What kafkahooks needs from a client library, and what it can serve there."""

    library: str
    """The client library's distribution name (``"aiokafka"``, ``"kafka-python"``)."""
    tracing_modes: frozenset[str]
    """The ``tracing=`` modes this adapter can serve; others are refused when the client is built."""

    def prepare(self, inst: Instrumentation, configs: dict[str, Any]) -> None:
        """Before the library builds the client: adjust its configuration (kafka-python takes a
        client factory whose connections report to the dispatcher)."""

    def install(self, client: Any, inst: Instrumentation) -> str | None:
        """After the library built ``client`` (a producer or a consumer): hook its connections
        when ``inst`` needs them, the producer's batch and record header injection, the cluster
        id watch; return the client id the library resolved."""

    def consumer_started(self, consumer: Any, tracker: HandOutTracker) -> None:
        """The consumer can fetch: report its hand-outs, per record batch, to ``tracker``."""

    def consumer_closed(self, consumer: Any) -> None:
        """The consumer closed: let the batches it held count what was handed out of them."""

    def check_internals(self) -> list[str]:
        """Names this adapter relies on that the installed library no longer has (empty: fine)."""
