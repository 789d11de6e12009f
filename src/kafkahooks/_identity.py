"""Who a wrapped client is, as its plugins name it in telemetry."""

from __future__ import annotations

from dataclasses import dataclass


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
