"""Drop-in kafka-python 3.0.x clients with broker hooks: change only the import.

>>> from kafkahooks.kafka import KafkaProducer
>>> producer = KafkaProducer(bootstrap_servers="127.0.0.1:9092", hooks=[MyHook()], tracing="hooks")

Every kafka-python argument is accepted unchanged, plus:

- ``hooks``: a hook object or a (nested) list of them; see :mod:`kafkahooks.hooks`.
- ``tracing``: ``"off"`` | ``"hooks"`` | ``"records"``; default ``$KAFKAHOOKS_TRACING``, else ``"off"``.
- ``tracer_provider``, ``meter_provider``: where spans and metrics go (default: the global ones).
- ``data_streams``: a :class:`kafkahooks.datastreams.DataStreams` (or ``False``).
- ``strict_hooks``: a hook's exception is raised again in the application's next call on the
  client (``send``, ``poll``, iteration...) or in ``close()`` (for tests).
- ``hook_budget_ms``: a hook call longer than this (default 50) moves that hook off the client's
  network thread, onto its own; ``None`` keeps every call inline. ``offload_hooks``: start them there.

With no hooks and tracing off nothing is installed: the client is the bare kafka-python client.
"""

try:
    import kafka as _kafka  # noqa: F401 - present?
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "kafkahooks.kafka wraps kafka-python, which is not installed: pip install 'kafkahooks[kafka-python]'"
    ) from exc

from kafkahooks.kafka._clients import KafkaConsumer, KafkaProducer

__all__ = ["KafkaConsumer", "KafkaProducer"]
