"""OpenTelemetry metrics from the broker and batch hooks, and kafkahooks' self-metrics.

``tracing="hooks"`` installs :class:`MetricsHooks` with the global meter provider (or
``meter_provider=``) and default :class:`MetricLabels`; add it yourself with ``hooks=[...]`` to
choose the labels.
"""

from kafkahooks.metrics._hooks import BATCH_BUCKETS, DURATION_BUCKETS_S, REQUEST_BUCKETS_S, MetricLabels, MetricsHooks
from kafkahooks.metrics._self import install_self_metrics

__all__ = [
    "BATCH_BUCKETS",
    "DURATION_BUCKETS_S",
    "REQUEST_BUCKETS_S",
    "MetricLabels",
    "MetricsHooks",
    "install_self_metrics",
]
