"""Who a wrapped client is, as its plugins name it in telemetry."""

from __future__ import annotations

from dataclasses import dataclass

MAX_CLUSTER_ID = 256
"""Longer cluster ids (Kafka's are 22 characters) are ignored, not kept in every edge tag."""


@dataclass
class ClientIdentity:
    """Filled by the wrapped client; plugins read it when they build attributes and tags.

    ``client_id`` is completed once the client library has resolved its default, right after
    construction, before any Produce or Fetch request.
    """

    role: str = ""
    client_id: str | None = None
    group_id: str | None = None
    bootstrap_servers: str | None = None
    cluster_id: str | None = None
    """The cluster id the client's Metadata responses carry, as soon as the first one arrives
    (before any Produce or Fetch); None until then or from brokers too old to send one."""
