"""Drop-in aiokafka clients with broker hooks: change only the import.

>>> from kafkahooks.aiokafka import AIOKafkaProducer
>>> producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9092", hooks=[MyHook()], tracing="hooks")

Every aiokafka argument is accepted unchanged, plus:

- ``hooks``: a hook object or a (nested) list of them; see :mod:`kafkahooks.hooks`.
- ``tracing``: ``"off"`` | ``"hooks"`` | ``"records"``; default ``$KAFKAHOOKS_TRACING``, else ``"off"``.
- ``tracer_provider``, ``meter_provider``: where spans and metrics go (default: the global ones).
- ``data_streams``: a :class:`kafkahooks.datastreams.DataStreams` (or ``False``).
- ``strict_hooks``: a hook's exception is raised again in the application's next call on the
  client (``send``, ``getmany``, ``getone``...) or in ``stop()`` (for tests).
- ``hook_budget_ms``: a hook call longer than this (default 50) moves that hook off the event loop,
  onto its own thread; ``None`` keeps every call inline. ``offload_hooks``: start them there.

With no hooks and tracing off nothing is installed: the client is the bare aiokafka client.
"""

try:
    import aiokafka as _aiokafka  # noqa: F401 - present?
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "kafkahooks.aiokafka wraps aiokafka, which is not installed: pip install 'kafkahooks[aiokafka]'"
    ) from exc

from kafkahooks.aiokafka._clients import AIOKafkaConsumer, AIOKafkaProducer

__all__ = ["AIOKafkaConsumer", "AIOKafkaProducer"]
