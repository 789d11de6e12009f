"""Connection instrumentation: the client-agnostic engine and one private adapter per client library.

Only ``_kafka_python`` imports kafka-python internals and only ``_aiokafka`` imports aiokafka
internals; when a client changes, one file changes.
"""
