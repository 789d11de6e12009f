"""The kafka-python 3.0.x adapter: the only code that touches kafka-python's internals.

- ``_connections``: each client's connections, per instance, through the client factory kafka-python
  takes (``kafka_client=``); the tap's facts from kafka-python's message shapes.
- ``_headers``: producer batch and record headers, and the resend a broker's refusal needs.
- ``_handouts``: what the consumer hands out, per record batch.
- ``_internals``: what this adapter relies on, checked once per process.

Everything both libraries do the same way is in :mod:`kafkahooks._wire._shared`.
"""

from __future__ import annotations

from typing import Any

from kafka.net.compat import KafkaNetClient

from kafkahooks._identity import ClientIdentity
from kafkahooks._log import get_logger
from kafkahooks._wire._adapter import Wiring
from kafkahooks._wire._shared import AdapterBase, watch_cluster_id
from kafkahooks._wire.kafka_python._connections import client_factory
from kafkahooks._wire.kafka_python._handouts import observe_handouts, release_handouts
from kafkahooks._wire.kafka_python._headers import install_batch_headers
from kafkahooks._wire.kafka_python._internals import VERIFIED_VERSIONS, check_internals
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._handout import HandOutTracker

__all__ = ["ADAPTER", "VERIFIED_VERSIONS", "KafkaPythonAdapter", "check_internals", "install_batch_headers"]

_logger = get_logger("kafkahooks._wire.kafka_python")


class KafkaPythonAdapter(AdapterBase):
    """:class:`~kafkahooks._wire._adapter.WireAdapter` for kafka-python: connections are hooked
    through the client factory given before construction, the rest after."""

    library = "kafka-python"

    def prepare(self, wiring: Wiring, configs: dict[str, Any]) -> None:
        """kafka-python builds its network client from ``kafka_client``: give it one whose
        connections report to the dispatcher (unless the application brought its own)."""
        if not wiring.dispatch.has_broker_hooks:
            return
        if configs.get("kafka_client") not in (None, KafkaNetClient):
            _logger.warning("broker_hooks_unavailable", reason="a custom kafka_client was given", role=wiring.role)
            return
        configs["kafka_client"] = client_factory(wiring.dispatch)

    def inject_headers(self, producer: Any, dispatch: HookDispatcher) -> None:
        install_batch_headers(producer, dispatch)

    def watch_cluster_id(self, client: Any, identity: ClientIdentity) -> None:
        cluster = getattr(client, "_metadata", None) or getattr(getattr(client, "_client", None), "cluster", None)
        watch_cluster_id(cluster, identity, "kafka_python")

    def client_id(self, client: Any) -> str | None:
        found = client.config.get("client_id")
        return str(found) if found else None

    def consumer_started(self, consumer: Any, tracker: HandOutTracker) -> None:
        observe_handouts(consumer, tracker)

    def consumer_closed(self, consumer: Any) -> None:
        release_handouts(consumer)

    def check_internals(self) -> list[str]:
        return check_internals()


ADAPTER = KafkaPythonAdapter()
