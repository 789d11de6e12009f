"""What a mode costs per Produce request, or per fetched batch, against the records it carries.

kafkahooks' cost is per request and per record batch, not per record: a service that sends or
reads small batches pays it more often for the same records. ``kafkahooks bench --batch-records 1
--batch-records 10 ...`` runs the produce workload with the producer's batch size fitted to that
many records (and batches leaving when full), reads back from the broker how many records each
request actually carried, and reports the mode's extra CPU per request: (CPU per message of the
mode's process minus the bare one's, from the same pair) times records per request. With
``--workload consume-batch`` or ``consume-record`` the consumers read a topic written in batches
fitted likewise, and the same figures are per fetched batch: in the summary's rows of a consume
workload (``"per": "fetched batch"``), ``records_per_request`` and ``extra_cpu_us_per_request``
count records per batch and CPU per batch.
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from kafkahooks.bench._results import Results
from kafkahooks.bench._runner import BenchConfig, run_benchmark, write_results


@dataclasses.dataclass
class PerRequest:
    """Every size's :class:`Results`, by records per request."""

    config: dict[str, Any]
    environment: dict[str, Any]
    by_size: dict[int, Results] = dataclasses.field(default_factory=dict)

    def summary(self) -> list[dict[str, Any]]:
        """Per (client, workload, mode, size): medians over the pairs of records per request
        (measured on the mode's topic; for a consume workload, per batch of the topic both sides
        read), CPU per message of each side, the CPU ratio and the extra CPU per request (batch)."""
        out = []
        for size, results in sorted(self.by_size.items()):
            pairs: dict[int, dict[str, dict[str, Any]]] = {}
            for run in results.runs:
                if run.get("ok"):
                    pairs.setdefault(run["pair"], {})["bare" if run["mode"] == "bare" else "mode"] = run
            groups: dict[tuple[str, str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
            for pair in pairs.values():
                if "bare" in pair and "mode" in pair:
                    mine = pair["mode"]
                    key = (mine["client"], mine.get("workload", "produce"), mine["mode"])
                    groups.setdefault(key, []).append((pair["bare"], mine))
            for (client, workload, mode), found in sorted(groups.items()):
                per_request = [_records(m, size) for _, m in found]
                records = statistics.median(per_request)
                out.append(
                    {
                        "client": client,
                        "workload": workload,
                        "per": "Produce request" if workload == "produce" else "fetched batch",
                        "mode": mode,
                        "batch_records": size,
                        "records_per_request": records,
                        "pairs": len(found),
                        "bare_cpu_us_per_msg": statistics.median(b["cpu_us_per_msg"] for b, _ in found),
                        "cpu_us_per_msg": statistics.median(m["cpu_us_per_msg"] for _, m in found),
                        "cpu_ratio_to_bare": statistics.median(
                            m["cpu_us_per_msg"] / b["cpu_us_per_msg"] for b, m in found if b["cpu_us_per_msg"]
                        ),
                        **_spread(
                            "extra_cpu_us_per_request",
                            [(m["cpu_us_per_msg"] - b["cpu_us_per_msg"]) * _records(m, size) for b, m in found],
                        ),
                    }
                )
        return out


def _records(run: dict[str, Any], size: int) -> float:
    """Records per Produce request or per fetched batch of a run, as read back from the broker
    (the fitted size if it could not be)."""
    return float(run.get("records_per_request") or run.get("records_per_batch") or size)


def _spread(name: str, values: list[float]) -> dict[str, float]:
    """The median of ``values`` and its interquartile range (``name``, ``name_p25``, ``name_p75``):
    a per-request figure multiplies the per-message difference, noise included, by the records
    a request carries, so at a thousand records it is wide and the plot says so."""
    ordered = sorted(values)
    if len(ordered) < 2:
        return {name: ordered[0], f"{name}_p25": ordered[0], f"{name}_p75": ordered[0]}
    low, _, high = statistics.quantiles(ordered, n=4, method="inclusive")
    return {name: statistics.median(ordered), f"{name}_p25": low, f"{name}_p75": high}


def run_per_request(
    config: BenchConfig,
    sizes: tuple[int, ...],
    console: Console | None = None,
    workloads: tuple[str, ...] = ("produce",),
) -> PerRequest:
    """``workloads`` once per size in ``sizes`` (records per request or per fetched batch), every
    mode of ``config``."""
    console = console or Console()
    found = PerRequest(config=dataclasses.asdict(config), environment={})
    for size in sizes:
        console.print(f"{size} record{'s' if size != 1 else ''} per batch", style="bold", highlight=False)
        results = run_benchmark(dataclasses.replace(config, workloads=workloads, batch_records=size), console)
        found.by_size[size] = results
        found.environment = results.environment
    found.config["batch_records"] = list(sizes)
    found.config["workloads"] = list(workloads)
    return found


def per_request_table(found: PerRequest) -> Table:
    table = Table(
        title="CPU per Produce request, or per fetched batch, over the bare client",
        caption=f"median of {found.config['rounds']} pairs; records per request or batch read back from the broker",
    )
    for name in ("client", "workload", "mode"):
        table.add_column(name, overflow="fold")
    for name in ("records/request or batch", "bare CPU µs/msg", "CPU ratio", "extra CPU µs/request or batch"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in found.summary():
        table.add_row(
            row["client"],
            row["workload"],
            row["mode"],
            f"{row['records_per_request']:.0f}",
            f"{row['bare_cpu_us_per_msg']:.1f}",
            f"{row['cpu_ratio_to_bare']:.3f}",
            f"{row['extra_cpu_us_per_request']:.0f}",
        )
    return table


def save_per_request(found: PerRequest, directory: Path) -> tuple[Path, Path | None]:
    """Write ``per-request.json`` (every run of every size, the summary) and ``per-request.png``."""
    summary = found.summary()
    return write_results(
        directory,
        "per-request",
        {
            "config": found.config,
            "environment": found.environment,
            "summary": summary,
            "runs": {str(size): results.runs for size, results in found.by_size.items()},
        },
        lambda plot, path: plot.plot_per_request(summary, found.environment, path),
    )
