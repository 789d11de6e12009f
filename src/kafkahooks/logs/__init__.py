"""Structured logs from the hooks, through structlog.

:class:`LogHooks` logs what an operator wants to know and nothing per request at info level:

================================  ========  ==============================================
event                             level     when
================================  ========  ==============================================
``broker_connected``              info      a connection to a broker is up (first per broker,
                                            then at most once per interval)
``broker_connect_failed``         warning   a connection attempt failed (rate-limited)
``broker_disconnected``           info      a connection closed (rate-limited)
``broker_request_failed``         warning   a request ended with a transport error
                                            (rate-limited per broker and key)
``broker_throttled``              warning   a broker asked for throttling (rate-limited)
``broker_request``                debug     one request's timings, for a sample of requests
                                            (``sample_every``; off by default)
================================  ========  ==============================================

kafkahooks' own events (``hook_failed``, ``telemetry_dropped``, ``trace_context_invalid``,
``datastreams_export_failed``...) follow the same conventions. Every event carries the bound
context ``client_id``, ``role`` and, for broker events, ``broker`` and ``key``; none carries
record keys, values or header values, or client credentials: only names, numbers and error
types (messages truncated to 200 characters).

The logger is ``structlog.get_logger("kafkahooks...")``: it follows the application's structlog
configuration, and reaches stdlib ``logging`` when structlog is configured to use it.
"""

from __future__ import annotations

import itertools
from typing import Any

from kafkahooks._identity import ClientIdentity
from kafkahooks._log import RateLimitedLog, get_logger
from kafkahooks.hooks import BrokerE2E, BrokerMeta, key_name


class LogHooks:
    """Connection state, errors and throttling as structured logs (see the module docs)."""

    def __init__(
        self,
        identity: ClientIdentity | None = None,
        *,
        interval_s: float = 60.0,
        sample_every: int = 0,
        logger: Any = None,
    ) -> None:
        self.identity = identity or ClientIdentity()
        base = logger or get_logger("kafkahooks.logs")
        self._logger = base.bind(role=self.identity.role or None)
        self._interval_s = interval_s
        self._limited = RateLimitedLog(self._logger, interval_s)
        self._seen: set[int] = set()
        self._sample_every = sample_every
        self._counter = itertools.count()

    def bind_identity(self, identity: ClientIdentity) -> None:
        """Name the client this plugin serves (called by the wrapped client before it connects)."""
        self.identity = identity
        self._logger = self._logger.bind(role=identity.role)
        self._limited = RateLimitedLog(self._logger, self._interval_s)

    def _context(self, meta: BrokerMeta) -> dict[str, Any]:
        return {"client_id": self.identity.client_id, "broker": meta.name, "host": meta.host, "port": meta.port}

    def on_broker_connect(self, meta: BrokerMeta, init_ns: int, err: BaseException | None) -> None:
        if err is not None:
            self._limited.warning(
                ("connect_failed", meta.node_id),
                "broker_connect_failed",
                **self._context(meta),
                error_type=type(err).__qualname__,
                error=str(err)[:200],
            )
        elif meta.node_id not in self._seen:
            self._seen.add(meta.node_id)
            self._logger.info("broker_connected", **self._context(meta), init_ms=round(init_ns / 1e6, 3))

    def on_broker_disconnect(self, meta: BrokerMeta) -> None:
        self._limited.info(("disconnected", meta.node_id), "broker_disconnected", **self._context(meta))

    def on_broker_e2e(self, meta: BrokerMeta, key: int, e2e: BrokerE2E) -> None:
        err = e2e.err
        if err is not None:
            self._limited.warning(
                ("request_failed", meta.node_id, key),
                "broker_request_failed",
                **self._context(meta),
                key=key_name(key),
                error_type=type(err).__qualname__,
                error=str(err)[:200],
            )
        elif self._sample_every and next(self._counter) % self._sample_every == 0:
            self._logger.debug(
                "broker_request",
                **self._context(meta),
                key=key_name(key),
                bytes_written=e2e.bytes_written,
                bytes_read=e2e.bytes_read,
                write_wait_us=e2e.write_wait_ns // 1000,
                time_to_write_us=e2e.time_to_write_ns // 1000,
                read_wait_us=e2e.read_wait_ns // 1000,
                time_to_read_us=e2e.time_to_read_ns // 1000,
            )

    def on_broker_throttle(self, meta: BrokerMeta, interval_ns: int, throttled_after_response: bool) -> None:
        self._limited.warning(
            ("throttled", meta.node_id),
            "broker_throttled",
            **self._context(meta),
            throttle_ms=round(interval_ns / 1e6, 3),
            after_response=throttled_after_response,
        )


__all__ = ["LogHooks"]
