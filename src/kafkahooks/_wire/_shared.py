"""What every client adapter does the same way, written once.

An adapter (``_wire/aiokafka``, ``_wire/kafka_python``) knows where its library keeps things; this
module knows what to do with them. An adapter supplies:

- a :class:`MessageReader`: how its library spells a Produce request's batches, an OffsetCommit
  request's offsets and the answers to Produce, OffsetCommit and Fetch (plain tuples out);
- where a client keeps its cluster metadata and client id, and how to hook its connections, its
  producer batches and its consumer's hand-outs (:class:`AdapterBase`'s abstract steps).

Everything else lives here: which request keys carry what to the tap (:func:`request_sent`,
:func:`response_decoded`), KIP-219's throttle semantics, the cluster-id watch, the headers a new
batch gets, a node id's :class:`~kafkahooks.hooks.BrokerMeta`, the hand-out cursor calls per record
batch, the internals check, and the install sequence every wrapped client runs.
"""

from __future__ import annotations

import abc
import weakref
from collections.abc import Callable, Iterable, Mapping
from time import time as _time
from typing import Any, Protocol

from kafkahooks._guard import internal_error
from kafkahooks._identity import MAX_CLUSTER_ID, ClientIdentity
from kafkahooks._wire._adapter import Wiring
from kafkahooks._wire._tap import ConnectionTap, ProduceTopics
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._handout import BatchCursor, HandOutTracker
from kafkahooks.hooks._records import Request
from kafkahooks.hooks._types import ApiKey, BrokerMeta

_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_OFFSET_COMMIT = int(ApiKey.OFFSET_COMMIT)

CommitOffsets = tuple[str, dict[tuple[str, int], int]]
"""An OffsetCommit request's group and offsets: ``(group, {(topic, partition): offset})``."""


class MessageReader(Protocol):
    """How one client library spells the requests and responses kafkahooks reads (plain tuples out)."""

    def produce_topics(self, request: Any) -> ProduceTopics:
        """A Produce request's ``[(topic, [(partition, records bytes), ...]), ...]``."""

    def commit_offsets(self, request: Any) -> CommitOffsets:
        """An OffsetCommit request's group and offsets."""

    def produce_acks(self, response: Any) -> list[tuple[str, int, int, int]]:
        """A Produce response's ``(topic, partition, error_code, base_offset)`` per partition."""

    def commit_acks(self, response: Any) -> Iterable[tuple[str, int, int]]:
        """An OffsetCommit response's ``(topic, partition, error_code)`` per partition."""

    def fetch_partitions(self, response: Any) -> Iterable[tuple[str, int, Any, int, int]]:
        """A Fetch response's ``(topic, partition, records, high_watermark, error_code)`` per partition."""


def request_sent(
    tap: ConnectionTap,
    reader: MessageReader,
    request: Any,
    created_ns: int,
    size: int,
    expects_response: bool,
) -> Request:
    """A request is on its way to the wire: the tap's record of it, with the Produce batches and
    the committed offsets it carries when some hook or plugin wants them."""
    key = request.API_KEY
    produce = reader.produce_topics(request) if key == _PRODUCE and tap.want_produce_batches else None
    req = tap.new_request(key, created_ns, size, expects_response, produce)
    if key == _OFFSET_COMMIT and tap.want_commits:
        req.commits = reader.commit_offsets(request)
    return req


def response_decoded(tap: ConnectionTap, reader: MessageReader, req: Request, response: Any) -> None:
    """The client decoded the response to ``req``: the broker's answers per partition (Produce
    acknowledgements, committed offsets, fetched batches and high watermarks), then throttle and
    the request's end to end."""
    key = req.key
    if key == _PRODUCE:
        if req.batches:
            tap.produce_acked(req, reader.produce_acks(response))
    elif key == _OFFSET_COMMIT:
        if req.commits is not None:
            tap.commit_acked(req, reader.commit_acks(response))
    elif key == _FETCH and tap.want_fetch_batches:
        for topic, partition, records, high_watermark, error_code in reader.fetch_partitions(response):
            tap.fetched(req, topic, partition, records, high_watermark, error_code)
    throttle_ms = getattr(response, "throttle_time_ms", 0) or 0
    after = throttled_after_response(key, getattr(response, "API_VERSION", -1)) if throttle_ms > 0 else True
    tap.decoded(req, throttle_ms, after)


_THROTTLED_AFTER_FROM: dict[int, int] = {
    0: 6,  # Produce
    1: 8,  # Fetch
    2: 3,  # ListOffsets
    3: 6,  # Metadata
    8: 4,  # OffsetCommit
    9: 4,  # OffsetFetch
    10: 2,  # FindCoordinator
    11: 3,  # JoinGroup
    12: 2,  # Heartbeat
    13: 2,  # LeaveGroup
    14: 2,  # SyncGroup
    15: 2,  # DescribeGroups
    16: 2,  # ListGroups
    18: 2,  # ApiVersions
    19: 3,  # CreateTopics
    20: 2,  # DeleteTopics
    21: 1,  # DeleteRecords
    22: 1,  # InitProducerId
    24: 1,  # AddPartitionsToTxn
    25: 1,  # AddOffsetsToTxn
    26: 1,  # EndTxn
    28: 1,  # TxnOffsetCommit
    29: 1,  # DescribeAcls
    30: 1,  # CreateAcls
    31: 1,  # DeleteAcls
    32: 2,  # DescribeConfigs
    33: 1,  # AlterConfigs
    34: 1,  # AlterReplicaLogDirs
    35: 1,  # DescribeLogDirs
    37: 1,  # CreatePartitions
    38: 1,  # CreateDelegationToken
    39: 1,  # RenewDelegationToken
    40: 1,  # ExpireDelegationToken
    41: 1,  # DescribeDelegationToken
    42: 1,  # DeleteGroups
}
"""KIP-219 (Kafka 2.0): from these versions of each request on, a broker answers at once and the
client must hold further requests for the throttle time; before them the broker itself delayed
the response. Newer request kinds throttle after the response from their first version. (The
same table franz-go's ``kmsg`` answers ``Throttle()`` from.)"""


def throttled_after_response(key: int, version: int) -> bool:
    """Whether a throttle the broker reported on a response of this key and version applies
    after the response (the client waits) rather than before it (the broker delayed it). An
    unknown version counts as new: the clients kafkahooks wraps speak post-2.0 versions."""
    if version < 0:
        return True
    return version >= _THROTTLED_AFTER_FROM.get(key, 0)


# -- connections and identity -----------------------------------------------------------------------


def node_meta(cluster: Any, node_id: Any) -> BrokerMeta:
    """Our view of a client's node id: an int is that broker; ``bootstrap-N`` (or any name
    without a number) is seed N; ``coordinator-7`` is broker 7."""
    node = cluster.broker_metadata(node_id)
    host = getattr(node, "host", "") or ""
    port = int(getattr(node, "port", 0) or 0)
    rack = getattr(node, "rack", None)
    if isinstance(node_id, int):
        return BrokerMeta(node_id, host, port, rack)
    prefix, _, number = str(node_id).rpartition("-")
    if prefix == "bootstrap" or not number.isdigit():
        return BrokerMeta.seed(int(number) if number.isdigit() else 0, host, port)
    return BrokerMeta(int(number), host, port, rack)


def decompressor(codec_module: Any) -> Callable[[int, bytes], bytes]:
    """The batch walker's ``decompress(codec, payload)``, from a library's own codec functions."""
    decoders: dict[int, Callable[[bytes], bytes]] = {
        1: codec_module.gzip_decode,
        2: codec_module.snappy_decode,
        3: codec_module.lz4_decode,
        4: codec_module.zstd_decode,
    }

    def decompress(codec: int, payload: bytes) -> bytes:
        return decoders[codec](payload)

    return decompress


def watch_cluster_id(
    cluster: Any,
    identity: ClientIdentity,
    where: str,
    from_response: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None,
) -> None:
    """Keep ``identity.cluster_id`` at the cluster id of every metadata update ``cluster`` applies
    (its ``update_metadata``, hooked on the instance): read from the response given to it
    (``from_response(args, kwargs)``) or, without one, from the cluster object after the update. The id
    the cluster already holds counts too (kafka-python bootstraps during construction)."""
    try:
        if cluster is None or getattr(cluster, "_kh_watched", False):
            return

        def note(found: Any) -> None:
            if found and isinstance(found, str) and len(found) <= MAX_CLUSTER_ID:
                identity.cluster_id = found

        note(getattr(cluster, "cluster_id", None))
        # Through a weak reference: the cluster holding a function that holds the cluster would be
        # a reference cycle (kafka-python takes care to avoid them).
        ref = weakref.ref(cluster)
        update = type(cluster).update_metadata

        def update_metadata(*args: Any, **kwargs: Any) -> Any:
            target = ref()
            result = update(target, *args, **kwargs)
            try:
                found = (
                    from_response(args, kwargs) if from_response is not None else getattr(target, "cluster_id", None)
                )
                note(found)
            except Exception as exc:
                internal_error(f"{where}.cluster_id", exc)
            return result

        cluster.update_metadata = update_metadata
        cluster._kh_watched = True
    except Exception as exc:  # never the client's problem
        internal_error(f"{where}.watch_cluster_id", exc)


# -- producer headers -------------------------------------------------------------------------------


def with_record_headers(dispatch: HookDispatcher, topic: str, partition: int, headers: Any) -> Any:
    """``headers`` plus what the record header injectors add (the same object when they add none)."""
    extra = dispatch.inject_record_headers(topic, partition, headers or ())
    return [*(headers or ()), *extra] if extra else headers


def with_batch_headers(
    dispatch: HookDispatcher, topic: str, partition: int, headers: Any, timestamp_ms: Any
) -> tuple[Any, tuple[str, ...], Any]:
    """A new batch's first record's ``headers`` plus what the batch header injectors add, the keys
    added (to take exactly those out again if the broker refuses them), and the record's
    timestamp to append it with.

    That timestamp is the application's, or, when it gave none, the one the client's batch
    builder would give it, ``int(time.time() * 1000)`` (both clients' builders), taken a moment
    earlier so that the injectors know it: the batch header carries it as the batch's first
    timestamp, which is how plugins find the batch again when its request finishes
    (:mod:`kafkahooks.hooks._opened`)."""
    if timestamp_ms is None:
        timestamp_ms = int(_time() * 1000)
    extra = dispatch.inject_batch_headers(
        topic, partition, headers or (), timestamp_ms if type(timestamp_ms) is int else -1
    )
    if not extra:
        return headers, (), timestamp_ms
    keys = (extra[0][0],) if len(extra) == 1 else tuple([k for k, _ in extra])
    return [*(headers or ()), *extra], keys, timestamp_ms


# -- consumer hand-outs -----------------------------------------------------------------------------


def batch_entered(cursor: BatchCursor, batch: Any, where: str) -> None:
    """A consumer's record iterator moved into ``batch`` (a library's record batch object): data
    batches of the v2 format count, control batches and older formats do not."""
    try:
        if batch is not None and getattr(batch, "magic", 2) == 2 and not getattr(batch, "is_control_batch", False):
            cursor.entered(batch.base_offset, batch.next_offset, getattr(batch, "first_timestamp", -1))
    except Exception as exc:
        internal_error(where, exc)


def batch_finished(cursor: BatchCursor, where: str) -> None:
    """The iterator asked for the next batch: the one it was in is used up."""
    try:
        cursor.finished()
    except Exception as exc:
        internal_error(where, exc)


# -- internals --------------------------------------------------------------------------------------


def missing_members(needed: Mapping[type, Iterable[str]]) -> list[str]:
    """``module.Class.name`` for each name a class no longer has (methods, class attributes)."""
    return [f"{c.__module__}.{c.__qualname__}.{n}" for c, names in needed.items() for n in names if not hasattr(c, n)]


# -- the install sequence ---------------------------------------------------------------------------


class AdapterBase(abc.ABC):
    """The :class:`~kafkahooks._wire._adapter.WireAdapter` sequence every library follows; an
    adapter names its library and fills in the steps that reach into it."""

    library: str
    tracing_modes: frozenset[str] = frozenset({"off", "hooks", "records"})

    def prepare(self, wiring: Wiring, configs: dict[str, Any]) -> None:  # noqa: B027 - an optional step
        """Before the library builds the client: nothing, unless the library takes a factory."""

    def install(self, client: Any, wiring: Wiring) -> str | None:
        """After the library built ``client``: its connections (when some hook wants them), a
        producer's header injection (when some hook injects), the cluster-id watch; the client id."""
        dispatch = wiring.dispatch
        if dispatch.has_broker_hooks:
            self.hook_connections(client, dispatch)
        if wiring.role == "producer" and (dispatch.has_batch_header_injectors or dispatch.has_record_header_injectors):
            self.inject_headers(client, dispatch)
        self.watch_cluster_id(client, wiring.identity)
        return self.client_id(client)

    def hook_connections(self, client: Any, dispatch: HookDispatcher) -> None:  # noqa: B027 - an optional step
        """Make the client's own connections report to ``dispatch`` (per instance)."""

    @abc.abstractmethod
    def inject_headers(self, producer: Any, dispatch: HookDispatcher) -> None:
        """Let ``dispatch``'s injectors add headers to new producer batches (and records)."""

    @abc.abstractmethod
    def watch_cluster_id(self, client: Any, identity: ClientIdentity) -> None:
        """Keep ``identity.cluster_id`` current (usually :func:`watch_cluster_id` on its metadata)."""

    @abc.abstractmethod
    def client_id(self, client: Any) -> str | None:
        """The client id the library resolved."""

    @abc.abstractmethod
    def consumer_started(self, consumer: Any, tracker: HandOutTracker) -> None:
        """Report the consumer's hand-outs, per record batch, to ``tracker``."""

    @abc.abstractmethod
    def consumer_closed(self, consumer: Any) -> None:
        """Let the batches the consumer still held count what was handed out of them."""

    @abc.abstractmethod
    def check_internals(self) -> list[str]:
        """Names the adapter relies on that the installed library no longer has."""
