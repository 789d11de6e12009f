"""aiokafka producer batches: the injectors' headers on each new batch's first record (and on every
record, for record injectors), and a resend without them when a broker refuses them."""

from __future__ import annotations

import sys
import weakref
from typing import Any

from aiokafka.producer.message_accumulator import MessageAccumulator
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kafkahooks._guard import internal_error
from kafkahooks._wire._rejected import HeaderGate, refuses_headers, without_injected
from kafkahooks._wire._shared import with_batch_headers, with_record_headers
from kafkahooks.hooks._dispatch import HookDispatcher

_ADD_MESSAGE = MessageAccumulator.add_message.__code__
"""The code of the accumulator's ``add_message``: the one caller of ``_append_batch`` whose new batch
is about to get its first record from ``send()``."""
_RECORD_CODEC = (DefaultRecordBatch, DefaultRecordBatchBuilder)
"""The client's own v2 batch reader and builder (to resend a refused batch without our headers)."""


class _Injection:
    """One producer's header injection: its dispatcher, accumulator and header gate."""

    __slots__ = ("accumulator", "dispatch", "gate")

    def __init__(self, dispatch: HookDispatcher, accumulator: Any) -> None:
        self.dispatch = dispatch
        self.accumulator = accumulator
        self.gate = HeaderGate()


def install_batch_headers(producer: Any, dispatch: HookDispatcher) -> None:
    """Let ``dispatch``'s injectors add headers to the first record of each new producer batch.

    Cost is per batch, not per record: the accumulator's ``_append_batch`` (called once per new
    batch, in the sending task) puts a :class:`_FirstAppend` in the fresh ``BatchBuilder``'s place
    for its record builder, which adds the headers to the record about to be appended and then
    steps aside. Hand-built batches (``send_batch``) arrive already filled and are left alone.

    A batch that got such headers gets a one-shot ``failure``: if the broker refuses it for them
    (see :mod:`kafkahooks._wire._rejected`), it is rebuilt without them and put back in the
    accumulator for the sender to send again, and this producer injects no more.
    """
    accumulator = producer._message_accumulator
    original = accumulator._append_batch
    injection = _Injection(dispatch, accumulator)
    gate = injection.gate

    def _append_batch(builder: Any, tp: Any) -> Any:
        batch = original(builder, tp)
        try:
            # Only a batch the accumulator opens for send(): add_message made ``builder`` a moment
            # ago (empty) and appends its record next. A hand-built one (send_batch, even empty)
            # keeps aiokafka's own builder, which aiokafka asserts when it stamps an idempotent
            # producer's state. aiokafka 0.13+ always writes v2 batches (brokers 0.11+), so
            # headers can always be sent.
            if gate.open and sys._getframe(1).f_code is _ADD_MESSAGE:
                builder._builder = _FirstAppend(builder._builder, (builder, batch, tp, injection))
        except Exception as exc:
            internal_error("aiokafka.append_batch", exc)
        return batch

    accumulator._append_batch = _append_batch


class _FirstAppend:
    """Stands in for a new batch's record builder (``BatchBuilder._builder``, aiokafka's compiled
    ``DefaultRecordBatchBuilder``) until the batch's first record: adds the injectors' headers to
    that record, then puts the real builder back, so every later record goes straight to it.

    Why not an ``append`` on the ``BatchBuilder`` instance, as before: an instance attribute named
    like a method puts that name into the class's shared instance keys, and from then on CPython
    3.11 cannot specialize ``self._builder.append(...)`` in ``MessageBatch.append`` for *any* batch
    of the process (it stays ``LOAD_METHOD_ADAPTIVE``): a cost on every record, in the client's own
    code. Swapping the value of an attribute the builder already has changes nothing of the kind.
    The proxy lets go of the builder at the first append, so no reference cycle outlives it.

    The per-batch state sits in one tuple, taken at the first append: the proxy's ``__getattr__``
    keeps CPython from specializing loads of its own attributes, so it reads one, not five.
    """

    __slots__ = ("_pending", "_real")

    def __init__(self, real: Any, pending: tuple[Any, Any, Any, _Injection]) -> None:
        self._real = real
        self._pending: tuple[Any, Any, Any, _Injection] | None = pending  # (owner, batch, tp, injection)

    def _restore(self) -> Any:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending[0]._builder = self._real
        return self._real

    def append(self, offset: Any, timestamp: Any, key: Any, value: Any, headers: Any) -> Any:
        real, pending = self._real, self._pending
        if pending is None:  # pragma: no cover - aiokafka reads the builder anew for each record
            return real.append(offset, timestamp, key=key, value=value, headers=headers)
        self._pending = None
        owner, batch, tp, injection = pending
        owner._builder = real
        dispatch = injection.dispatch
        injected: tuple[str, ...] = ()
        try:
            if dispatch.has_record_header_injectors:
                headers = with_record_headers(dispatch, tp.topic, tp.partition, headers)
                _inject_on_every_append(owner, tp, dispatch)  # the batch's later records
            headers, injected, timestamp = with_batch_headers(dispatch, tp.topic, tp.partition, headers, timestamp)
        except Exception as exc:
            internal_error("aiokafka.first_append", exc)
        metadata = real.append(offset, timestamp, key=key, value=value, headers=headers)
        if injected and metadata is not None:
            try:
                batch.failure = _RefusalWatch(batch, injected, injection)
            except Exception as exc:
                internal_error("aiokafka.watch_refusal", exc)
        return metadata

    def __getattr__(self, name: str) -> Any:
        # Anything but append before the first record (size() or build() of a batch that stays
        # empty): the real builder answers, and takes its place back.
        return getattr(self._restore(), name)


def _inject_on_every_append(builder: Any, tp: Any, dispatch: HookDispatcher) -> None:
    """Per-record headers (``inject_record_headers``) on every record appended to ``builder``: one
    call per record, no record object, no coroutine. The override lives in the builder's own
    ``__dict__`` and holds it weakly (no reference cycle per batch); it costs what per-record
    headers cost, and is installed only by a producer that asked for them."""
    class_append = type(builder).append
    builder_ref = weakref.ref(builder)

    def every_append(*, timestamp: Any, key: Any, value: Any, headers: Any = None) -> Any:
        try:
            headers = with_record_headers(dispatch, tp.topic, tp.partition, headers)
        except Exception as exc:
            internal_error("aiokafka.record_headers", exc)
        return class_append(builder_ref(), timestamp=timestamp, key=key, value=value, headers=headers)

    builder.append = every_append


class _RefusalWatch:
    """A batch's ``failure`` while it carries injected headers: if the broker refuses the batch for
    them (see :mod:`kafkahooks._wire._rejected`), it is rebuilt without them and put back in the
    accumulator, and the producer injects no more; any other failure goes to aiokafka's own.

    One small object per batch (no closure cells), holding the batch weakly: the batch holds it,
    and a reference cycle per batch would be left to the garbage collector."""

    __slots__ = ("_batch", "_injected", "_injection")

    def __init__(self, batch: Any, injected: tuple[str, ...], injection: _Injection) -> None:
        self._batch = weakref.ref(batch)
        self._injected = injected
        self._injection = injection

    def __call__(self, exception: BaseException) -> Any:
        batch = self._batch()
        if batch is None:  # pragma: no cover - the caller holds the batch
            return None
        del batch.failure
        try:
            if refuses_headers(exception):
                injection = self._injection
                injection.gate.refused(exception)
                rebuilt = without_injected(batch.get_data_buffer(), self._injected, *_RECORD_CODEC)
                if rebuilt is not None:
                    batch._builder._buffer = rebuilt
                    injection.accumulator.reenqueue(batch)
                    return None
        except Exception as exc:
            internal_error("aiokafka.batch_failure", exc)
        return type(batch).failure(batch, exception)
