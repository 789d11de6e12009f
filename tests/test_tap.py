"""The connection timing engine, fed plain I/O facts (no network)."""

from __future__ import annotations

import struct
import time

from kafkahooks._wire._tap import ConnectionTap
from kafkahooks.hooks import ApiKey, BrokerMeta, ConnectionClosed, HookDispatcher
from kafkahooks.testing import RecordingHook

META = BrokerMeta(1, "127.0.0.1", 9092)


def make_tap() -> tuple[ConnectionTap, RecordingHook]:
    recorder = RecordingHook()
    return ConnectionTap(HookDispatcher([recorder]), META), recorder


def frame(body_len: int) -> bytes:
    return struct.pack(">i", body_len) + b"\x00" * body_len


def test_frames_sharing_one_send_are_matched_by_offsets() -> None:
    """Two frames written in one syscall both start at its start and end at its end."""
    tap, rec = make_tap()
    for key, size in ((ApiKey.METADATA, 40), (ApiKey.PRODUCE, 100)):
        tap.enqueue(tap.new_request(key, 1_000, size, True))
    tap.sent(140, 5_000, 5_600, None)
    writes = rec.of("broker_write")
    assert [(ApiKey.METADATA, 40, 4_000, 600), (ApiKey.PRODUCE, 100, 4_000, 600)] == [
        (w.key, w.bytes_written, w.write_wait_ns, w.time_to_write_ns) for w in writes
    ]


def test_partial_send_completes_on_a_later_send() -> None:
    """A frame split over two sends starts at the first and ends at the second."""
    tap, rec = make_tap()
    tap.enqueue(tap.new_request(ApiKey.PRODUCE, 0, 100, True))
    tap.sent(60, 10, 20, None)
    assert [] == rec.of("broker_write")
    tap.sent(40, 50, 70, None)
    (write,) = rec.of("broker_write")
    assert (100, 10, 60) == (write.bytes_written, write.write_wait_ns, write.time_to_write_ns)


def test_read_wait_is_time_behind_earlier_responses() -> None:
    """A response queued behind another waits from its write end until the previous read end."""
    tap, rec = make_tap()
    tap.enqueue(tap.new_request(ApiKey.FETCH, 0, 10, True))
    tap.enqueue(tap.new_request(ApiKey.METADATA, 0, 10, True))
    tap.sent(20, 100, 200, None)
    tap.received(frame(30), 1_000)
    tap.received(frame(5), 1_500)
    reads = rec.of("broker_read")
    assert [(ApiKey.FETCH, 34, 0, 800), (ApiKey.METADATA, 9, 800, 500)] == [
        (r.key, r.bytes_read, r.read_wait_ns, r.time_to_read_ns) for r in reads
    ]


def test_frames_split_anywhere_are_reassembled() -> None:
    """Size prefixes and bodies split at every byte boundary still yield whole frames."""
    tap, rec = make_tap()
    for _ in range(3):
        tap.enqueue(tap.new_request(ApiKey.METADATA, 0, 10, True))
    tap.sent(30, 1, 2, None)
    data = frame(3) + frame(0) + frame(7)
    for i in range(len(data)):
        tap.received(data[i : i + 1], 10 + i)
    assert [7, 4, 11] == [r.bytes_read for r in rec.of("broker_read")]
    assert 3 == sum(1 for _ in iter(tap.next_decoded, None))


def test_no_response_expected_fires_e2e_after_write() -> None:
    """acks=0: a write, no read, and the end-to-end event right after the write."""
    tap, rec = make_tap()
    tap.enqueue(tap.new_request(ApiKey.PRODUCE, 0, 50, False))
    tap.sent(50, 10, 30, None)
    assert [] == rec.of("broker_read")
    (e2e,) = rec.of("broker_e2e")
    assert (50, 0, 20) == (e2e.e2e.bytes_written, e2e.e2e.bytes_read, e2e.e2e.duration_e2e_ns)


def test_close_ends_every_request_with_errors() -> None:
    """Closing with requests unsent and in flight reports each one, partial bytes included."""
    tap, rec = make_tap()
    tap.connect_done(None, now_ns=tap.connect_start_ns + 5)
    tap.enqueue(tap.new_request(ApiKey.FETCH, 0, 10, True))
    tap.enqueue(tap.new_request(ApiKey.PRODUCE, 0, 100, True))
    tap.sent(40, 1, 2, None)
    tap.received(struct.pack(">i", 50) + b"\x00" * 10, 3)
    tap.closed(None)
    writes = rec.of("broker_write")
    assert [(10, None), (30, ConnectionClosed)] == [(w.bytes_written, type(w.err) if w.err else None) for w in writes]
    (read,) = rec.of("broker_read")
    assert (14, ConnectionClosed) == (read.bytes_read, type(read.err))
    assert 2 == len(rec.of("broker_e2e"))
    assert all(e.e2e.err is not None for e in rec.of("broker_e2e"))
    assert 1 == len(rec.of("broker_disconnect"))
    tap.closed(None)
    assert 1 == len(rec.of("broker_disconnect"))


def test_write_error_is_reported_once_with_partial_bytes() -> None:
    """A socket error mid-frame reports the bytes that made it and the error."""
    tap, rec = make_tap()
    tap.enqueue(tap.new_request(ApiKey.PRODUCE, 0, 100, True))
    boom = OSError("reset")
    tap.sent(30, 5, 6, boom)
    (write,) = rec.of("broker_write")
    assert (30, boom) == (write.bytes_written, write.err)
    (e2e,) = rec.of("broker_e2e")
    assert boom is e2e.e2e.write_err


def test_failed_connect_is_reported_without_disconnect() -> None:
    """A failed connection attempt fires connect(err) and no disconnect."""
    tap, rec = make_tap()
    err = ConnectionRefusedError()
    tap.connect_done(err)
    tap.closed(err)
    (connect,) = rec.of("broker_connect")
    assert err is connect.err
    assert [] == rec.of("broker_disconnect")


def test_durations_are_never_negative() -> None:
    """Clock steps backwards clamp to zero rather than reporting negative durations."""
    tap, rec = make_tap()
    tap.enqueue(tap.new_request(ApiKey.FETCH, 1_000, 10, True))
    tap.sent(10, 500, 400, None)
    tap.received(frame(1), 100)
    (write,) = rec.of("broker_write")
    (read,) = rec.of("broker_read")
    assert (0, 0) == (write.write_wait_ns, write.time_to_write_ns)
    assert (0, 0) == (read.read_wait_ns, read.time_to_read_ns)


def test_pipelined_responses_read_in_one_chunk_keep_their_own_times() -> None:
    """Two Produce responses arriving in one chunk (kafka-python reads both, then decodes each):
    each end-to-end event carries its own write and read ends, and the spans built from the
    request log start and end where their own write did (a plugin field shared between read and
    end-to-end once gave the second span the wrong start and no length)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kafkahooks import export
    from kafkahooks.tracing import BrokerSpans

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorder = RecordingHook()
    dispatch = HookDispatcher([recorder, BrokerSpans("producer", tracer_provider=provider)])
    tap = ConnectionTap(dispatch, META)
    base = time.monotonic_ns()
    for i in range(2):
        tap.enqueue(tap.new_request(ApiKey.PRODUCE, base, 50, True))
        tap.sent(50, base + 1_000 + i * 10_000, base + 3_000 + i * 10_000, None)
    tap.received(frame(20) + frame(20), base + 50_000)
    reads = [e.event for e in recorder.events if e.event in ("broker_read", "broker_e2e")]
    assert ["broker_read", "broker_read"] == reads
    while (req := tap.next_decoded()) is not None:
        tap.decoded(req, 0)
    e2es = [e.e2e for e in recorder.of("broker_e2e")]
    assert [base + 3_000, base + 13_000] == [e.write_end_ns for e in e2es]
    assert [base + 50_000, base + 50_000] == [e.read_end_ns for e in e2es]
    export.flush()
    spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
    assert [2_000, 2_000] == [s.end_time - s.start_time for s in spans]
    assert 10_000 == spans[1].start_time - spans[0].start_time
    provider.shutdown()


def test_throttle_semantics_follow_kip_219_per_request_version() -> None:
    """A throttle applies after the response (the client waits) from the request versions KIP-219
    bumped on; before them the broker delayed the response itself. Newer request kinds, and an
    unknown version, count as after."""
    from kafkahooks._wire._shared import throttled_after_response

    assert not throttled_after_response(ApiKey.PRODUCE, 5)
    assert throttled_after_response(ApiKey.PRODUCE, 6)
    assert not throttled_after_response(ApiKey.FETCH, 7)
    assert throttled_after_response(ApiKey.FETCH, 8)
    assert not throttled_after_response(ApiKey.METADATA, 5)
    assert throttled_after_response(ApiKey.METADATA, 6)
    assert throttled_after_response(ApiKey.OFFSET_COMMIT, 4)
    assert throttled_after_response(50, 0)  # a request kind born after KIP-219
    assert throttled_after_response(ApiKey.PRODUCE, -1)


def test_a_decoded_response_reports_its_throttle_once_with_its_semantics() -> None:
    """``response_decoded`` hands the tap the response's throttle and whether it applies after the
    response, read from the response's own version (a Metadata v5 answer: before)."""
    from kafkahooks._wire._shared import response_decoded

    class Reader:  # a Metadata request reads nothing per partition
        pass

    class MetadataResponse:
        API_VERSION = 5
        throttle_time_ms = 30

    tap, rec = make_tap()
    req = tap.new_request(ApiKey.METADATA, 0, 40, True)
    tap.written(req, 40, 10, 20, None)
    assert tap.frame_read(60, 50) is req
    response_decoded(tap, Reader(), req, MetadataResponse())  # type: ignore[arg-type]
    (throttle,) = rec.of("broker_throttle")
    assert (30_000_000, False) == (throttle.interval_ns, throttle.throttled_after_response)
    assert 1 == len(rec.of("broker_e2e"))
