"""One benchmark run in a fresh process: ``python -m kafkahooks.bench._worker '<json>'``.

Each mode gets its own process because OpenTelemetry's instrumentations patch client classes
globally. The run prints one JSON object: messages, seconds, CPU seconds (all threads, the
export worker and span processors included), and peak RSS.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from kafkahooks.bench._modes import MODES, Telemetry


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(run: Callable[[], int]) -> dict[str, Any]:
    cpu0, t0 = _cpu(), time.perf_counter()
    count = run()
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    return {"messages": count, "seconds": seconds, "cpu_seconds": cpu}


def _producer_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    acks = cfg["acks"]
    kwargs: dict[str, Any] = {
        "bootstrap_servers": cfg["bootstrap"],
        "linger_ms": cfg["linger_ms"],
        "acks": acks if acks in ("all", -1) else int(acks),
    }
    if cfg.get("compression"):
        kwargs["compression_type"] = cfg["compression"]
    return kwargs


# -- kafka-python -----------------------------------------------------------------------------------


def _kafka_python(cfg: dict[str, Any], telemetry: Telemetry) -> dict[str, Any]:
    import kafka

    from kafkahooks.kafka import KafkaConsumer, KafkaProducer

    wrapped = telemetry.wrapped
    value = b"x" * cfg["value_size"]
    n: int = cfg["messages"]
    if cfg["workload"] == "produce":
        cls = KafkaProducer if wrapped else kafka.KafkaProducer
        producer = cls(**_producer_kwargs(cfg), **telemetry.client_kwargs)
        producer.send(cfg["topic"], value).get(timeout=30)  # warm: metadata and connections

        def produce() -> int:
            send = producer.send
            topic = cfg["topic"]
            for _ in range(n):
                send(topic, value)
            producer.flush()
            return n

        result = _measure(produce)
        producer.close()
        return result

    cls = KafkaConsumer if wrapped else kafka.KafkaConsumer
    consumer = cls(
        bootstrap_servers=cfg["bootstrap"],
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        **telemetry.client_kwargs,
    )
    consumer.assign([kafka.TopicPartition(cfg["topic"], p) for p in range(cfg["partitions"])])

    def consume_batches() -> int:
        got = 0
        while got < n:
            batch = consumer.poll(timeout_ms=1000)
            if not batch and got:
                break
            got += sum(len(records) for records in batch.values())
        return int(got)

    def consume_records() -> int:
        got = 0
        for _ in consumer:
            got += 1
            if got >= n:
                break
        return got

    result = _measure(consume_batches if cfg["workload"] == "consume-batch" else consume_records)
    consumer.close()
    return result


# -- aiokafka ---------------------------------------------------------------------------------------


async def _aiokafka(cfg: dict[str, Any], telemetry: Telemetry) -> dict[str, Any]:
    import aiokafka
    from aiokafka.structs import TopicPartition

    from kafkahooks.aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    wrapped = telemetry.wrapped
    value = b"x" * cfg["value_size"]
    n: int = cfg["messages"]
    if cfg["workload"] == "produce":
        cls = AIOKafkaProducer if wrapped else aiokafka.AIOKafkaProducer
        producer = cls(**_producer_kwargs(cfg), **telemetry.client_kwargs)
        await producer.start()
        await producer.send_and_wait(cfg["topic"], value)
        cpu0, t0 = _cpu(), time.perf_counter()
        send = producer.send
        topic = cfg["topic"]
        for _ in range(n):
            await send(topic, value)
        await producer.flush()
        seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
        await producer.stop()
        return {"messages": n, "seconds": seconds, "cpu_seconds": cpu}

    cls = AIOKafkaConsumer if wrapped else aiokafka.AIOKafkaConsumer
    consumer = cls(bootstrap_servers=cfg["bootstrap"], auto_offset_reset="earliest", **telemetry.client_kwargs)
    await consumer.start()
    consumer.assign([TopicPartition(cfg["topic"], p) for p in range(cfg["partitions"])])
    cpu0, t0 = _cpu(), time.perf_counter()
    got = 0
    if cfg["workload"] == "consume-batch":
        while got < n:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch and got:
                break
            got += sum(len(records) for records in batch.values())
    else:
        async for _ in consumer:
            got += 1
            if got >= n:
                break
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    await consumer.stop()
    return {"messages": got, "seconds": seconds, "cpu_seconds": cpu}


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one (client, workload, mode) as configured; returns the measurements."""
    telemetry = MODES[cfg["mode"]].setup(cfg["client"])
    try:
        if cfg["client"] == "kafka-python":
            result = _kafka_python(cfg, telemetry)
        else:
            result = asyncio.run(_aiokafka(cfg, telemetry))
    finally:
        telemetry.close()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["msgs_per_s"] = result["messages"] / result["seconds"] if result["seconds"] else 0.0
    result["cpu_us_per_msg"] = result["cpu_seconds"] / max(result["messages"], 1) * 1e6
    result["spans_dropped"] = telemetry.dropped()
    return result


def main() -> None:
    cfg = json.loads(sys.argv[1])
    cpus = cfg.get("cpus")
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))
    print(json.dumps(run(cfg)), flush=True)


if __name__ == "__main__":
    main()
