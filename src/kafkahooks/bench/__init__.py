"""Throughput benchmarks: the bare client against every kafkahooks mode and the per-record peers.

``kafkahooks bench`` (or :func:`run_benchmark`) runs each mode in a fresh process, alternating
modes in rounds, and reports the median throughput, its ratio to the bare client within the same
round, CPU time per message and peak RSS, with the environment recorded next to the figures.
"""

from kafkahooks.bench._modes import DECOMPOSITION, MODES, Mode
from kafkahooks.bench._per_request import PerRequest, per_request_table, run_per_request, save_per_request
from kafkahooks.bench._results import CLIENTS, WORKLOADS, Results
from kafkahooks.bench._runner import BenchConfig, run_benchmark, save, summary_table

__all__ = [
    "CLIENTS",
    "DECOMPOSITION",
    "MODES",
    "WORKLOADS",
    "BenchConfig",
    "Mode",
    "PerRequest",
    "Results",
    "per_request_table",
    "run_benchmark",
    "run_per_request",
    "save",
    "save_per_request",
    "summary_table",
]
