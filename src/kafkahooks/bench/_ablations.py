"""Ablations: a mode with one of kafkahooks' mechanisms taken out, to price that mechanism alone.

The per-plugin modes (``--decompose``) say what each plugin costs; these say what each *piece of
machinery* costs, whatever the plugin: the connection taps, the stand-in that opens a producer
batch's headers, the client's ``send`` wrapper, the refusal watch, the request log, the export
worker's work, the walk of a Produce request. ``kafkahooks bench --ablate dsm`` runs data streams
alone and, beside it, data streams with each piece removed (``dsm-no-taps``,
``dsm-no-batch-open``, ...): the difference of their CPU ratios is that piece's cost where a
service pays it. Two floors come with them: a batch header injector that adds nothing
(``inject-none``: the batch-open stand-in alone) and one that adds a constant header
(``inject-header``).

A mode here switches the piece off by replacing kafkahooks' own code in the benchmark's worker
process, before the client is built (each side of the benchmark is a process of its own, so
nothing reaches the bare side), and puts it back at teardown. What is removed is telemetry: an
ablated mode is a measurement, not a configuration to run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Protocol, TypeVar


class _Setup(Protocol):
    """What a mode's setup gives (a :class:`~kafkahooks.bench._modes.Telemetry`), as far as an
    ablation needs it."""

    teardown: Callable[[], None] | None


T = TypeVar("T", bound=_Setup)
Undo = Callable[[], None]

HEADER = [("dd-pathway-ctx-base64", b"A" * 28)]
"""What ``inject-header`` adds to each batch's first record: a pathway header's name and size
(spelled out, not imported from :mod:`kafkahooks.datastreams`: every bench process, the bare side's
too, imports this module, and a larger heap is a cost of its own on ``getmany``)."""


def _set(owner: Any, name: str, value: Any) -> Undo:
    """Set ``owner.name`` to ``value``; the undo puts the old value back (or removes it)."""
    missing = object()
    old = vars(owner).get(name, missing)
    setattr(owner, name, value)

    def undo() -> None:
        if old is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, old)

    return undo


def _adapter(client: str) -> Any:
    """The adapter of ``client`` only: importing the other library would grow the process's heap,
    and with it every full pass of the collector (a quarter of a ``getmany`` consumer's CPU)."""
    if client == "aiokafka":
        from kafkahooks._wire.aiokafka import ADAPTER as AIOKAFKA

        return AIOKAFKA
    from kafkahooks._wire.kafka_python import ADAPTER as KAFKA_PYTHON

    return KAFKA_PYTHON


def _no_taps(client: str) -> list[Undo]:
    """Connections are not hooked: no request is timed, nothing reaches the request log. (A
    consumer's hand-outs are still tracked, and then find no batch the tap read: this ablation
    prices the taps of a producer, not of a consumer.)"""
    return [_set(_adapter(client), "hook_connections", lambda _client, _dispatch: None)]


def _no_batch_open(client: str) -> list[Undo]:
    """Producer batches get no headers: no stand-in, no header, no checkpoint noted, no refusal watch."""
    return [_set(_adapter(client), "inject_headers", lambda _producer, _dispatch: None)]


def _no_send_wrapper(client: str) -> list[Undo]:
    """aiokafka's ``AIOKafkaClient.send`` is not wrapped (a request's creation is stamped when its
    connection's ``send`` runs, instead of by a coroutine around the client's)."""
    import kafkahooks._wire.aiokafka as package

    hook_client = vars(package)["hook_client"]

    def unwrapped(client: Any, dispatch: Any) -> None:
        hook_client(client, dispatch)
        # Deleted as an attribute: reading the client's __dict__ would materialize it for good.
        with contextlib.suppress(AttributeError):
            del client.send

    return [_set(package, "hook_client", unwrapped)]


def _no_refusal_watch(client: str) -> list[Undo]:
    """aiokafka's batches that carry kafkahooks' headers get no watch for a broker's refusal: each
    keeps its own ``failure`` (the headers are added as before, but their keys are not kept, and
    with no keys there is no watch; one call more per batch, that of this stand-in)."""
    from kafkahooks._wire.aiokafka import _headers

    with_batch_headers = vars(_headers)["with_batch_headers"]

    def unwatched(dispatch: Any, topic: str, partition: int, headers: Any, timestamp_ms: Any) -> Any:
        headers, _, timestamp_ms = with_batch_headers(dispatch, topic, partition, headers, timestamp_ms)
        return headers, (), timestamp_ms

    return [_set(_headers, "with_batch_headers", unwatched)]


def _no_request_log(client: str) -> list[Undo]:
    """Finished requests are timed but never offered to the request log (the export worker gets none)."""
    from kafkahooks.hooks._requests import RequestLog

    init = RequestLog.__init__

    def unlogged(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.offer = _accept

    return [_set(RequestLog, "__init__", unlogged)]


def _accept(item: Any) -> bool:
    return True


def _no_export_work(client: str) -> list[Undo]:
    """Finished requests and hand-outs reach the request log as before, and the export worker
    drains it on its passes, but gives nothing to the plugins: no span, metric or checkpoint. With
    ``request-log``, it splits the log's cost into handing the records over and the work done
    with them."""
    from kafkahooks.hooks._requests import RequestLog

    def drop(self: Any) -> None:
        self.buffer.drain()
        self.others.drain()

    return [_set(RequestLog, "process", drop)]


def _no_produce_walk(client: str) -> list[Undo]:
    """Produce requests carry no batch infos (the request is not walked as it is sent)."""
    from kafkahooks._wire._tap import ConnectionTap

    return [_set(ConnectionTap, "_produce_batches", lambda self, produce: {})]


ABLATIONS: dict[str, tuple[str, Callable[[str], list[Undo]], tuple[str, ...] | None]] = {
    "taps": ("the connection taps", _no_taps, None),
    "batch-open": ("the producer batch's headers, checkpoint and refusal watch", _no_batch_open, None),
    "send-wrapper": ("aiokafka's client send wrapper", _no_send_wrapper, ("aiokafka",)),
    "refusal-watch": ("aiokafka's per-batch refusal watch", _no_refusal_watch, ("aiokafka",)),
    "request-log": ("the request log (nothing reaches the export worker)", _no_request_log, None),
    "export-work": ("the plugins' work on the export worker (the records still handed over)", _no_export_work, None),
    "produce-walk": ("the walk of each Produce request", _no_produce_walk, None),
}
"""name -> (what is taken out, the patch, the clients it exists for; None: both)."""


def without(name: str, setup: Callable[[str, str], T], client: str, role: str) -> T:
    """What a mode's ``setup`` gives (its ``Telemetry``), with the piece ``name`` taken out until
    its teardown."""
    undo = ABLATIONS[name][1](client)
    try:
        telemetry = setup(client, role)
    except BaseException:
        for step in reversed(undo):
            step()
        raise
    teardown = telemetry.teardown

    def restore() -> None:
        try:
            if teardown is not None:
                teardown()
        finally:
            for step in reversed(undo):
                step()

    telemetry.teardown = restore
    return telemetry


class Injector:
    """A batch header injector adding ``headers`` (or nothing) to each new batch's first record."""

    kafkahooks_batch_timestamp = True

    def __init__(self, headers: list[tuple[str, bytes]] | None) -> None:
        self.headers = headers

    def inject_batch_headers(
        self, topic: str, partition: int, headers: Any, timestamp_ms: int = -1
    ) -> list[tuple[str, bytes]] | None:
        return self.headers


FLOORS = {
    "inject-none": ("a batch header injector that adds nothing (the batch-open stand-in alone)", None),
    "inject-header": ("a batch header injector adding one constant 28-byte header", HEADER),
}
"""name -> (description, the headers its injector adds)."""

ABLATED_BASES = ("dsm", "hooks")
"""The modes ``--ablate`` takes apart."""

ABLATION_MODES = frozenset({*FLOORS, *(f"{base}-no-{name}" for base in ABLATED_BASES for name in ABLATIONS)})
"""Every mode this module defines (left out of ``--mode``'s long help)."""


def ablation_modes(base: str) -> list[str]:
    """``base``, the floors, and ``base`` with each piece taken out: what ``--ablate BASE`` runs."""
    return [base, *FLOORS, *(f"{base}-no-{name}" for name in ABLATIONS)]
