"""Connection instrumentation: the client-agnostic engine, what every adapter shares, and one
adapter folder per client library.

- ``_tap``, ``_batches``: the timing engine and the record-batch walker (no client library).
- ``_shared``, ``_rejected``, ``_adapter``: what every adapter does the same way, the header
  refusal resend, and the contract a wrapped client sees (:class:`~._adapter.WireAdapter`).
- ``aiokafka/``, ``kafka_python/``: the only code that imports a library's internals; when a
  library changes, one folder changes.
"""
