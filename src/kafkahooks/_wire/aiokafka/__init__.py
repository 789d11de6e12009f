"""The aiokafka 0.13-0.14 adapter: the only code that touches aiokafka's internals.

- ``_connections``: each client's connections, per instance (the tap's facts, aiokafka's message shapes).
- ``_headers``: producer batch and record headers, and the resend a broker's refusal needs.
- ``_handouts``: what the consumer hands out, per record batch.
- ``_internals``: what this adapter relies on, checked once per process.

Everything both libraries do the same way is in :mod:`kafkahooks._wire._shared`.
"""

from __future__ import annotations

from typing import Any

import aiokafka

from kafkahooks._identity import ClientIdentity
from kafkahooks._wire._shared import AdapterBase, watch_cluster_id
from kafkahooks._wire.aiokafka._connections import first_headers, hook_client
from kafkahooks._wire.aiokafka._handouts import observe_handouts, release_handouts
from kafkahooks._wire.aiokafka._headers import install_batch_headers
from kafkahooks._wire.aiokafka._internals import VERIFIED_VERSIONS, check_internals
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._handout import HandOutTracker

__all__ = ["ADAPTER", "VERIFIED_VERSIONS", "AiokafkaAdapter", "check_internals", "first_headers"]


def _network_client(client: Any) -> Any:
    """The producer's or consumer's ``AIOKafkaClient``."""
    return client.client if isinstance(client, aiokafka.AIOKafkaProducer) else client._client


class AiokafkaAdapter(AdapterBase):
    """:class:`~kafkahooks._wire._adapter.WireAdapter` for aiokafka: everything is hooked after
    the client is constructed, on its own network client object."""

    library = "aiokafka"

    def hook_connections(self, client: Any, dispatch: HookDispatcher) -> None:
        hook_client(_network_client(client), dispatch)

    def inject_headers(self, producer: Any, dispatch: HookDispatcher) -> None:
        install_batch_headers(producer, dispatch)

    def watch_cluster_id(self, client: Any, identity: ClientIdentity) -> None:
        # aiokafka's metadata object does not keep the cluster id: read it from each response.
        watch_cluster_id(
            _network_client(client).cluster,
            identity,
            "aiokafka",
            lambda args, kwargs: getattr(args[0] if args else kwargs.get("metadata"), "cluster_id", None),
        )

    def client_id(self, client: Any) -> str | None:
        value = getattr(_network_client(client), "_client_id", None)
        return str(value) if value else None

    def consumer_started(self, consumer: Any, tracker: HandOutTracker) -> None:
        observe_handouts(consumer._fetcher, tracker)

    def consumer_closed(self, consumer: Any) -> None:
        if consumer._fetcher is not None:
            release_handouts(consumer._fetcher)

    def check_internals(self) -> list[str]:
        return check_internals()


ADAPTER = AiokafkaAdapter()
