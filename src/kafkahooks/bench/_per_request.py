"""What a mode costs per Produce request, against the number of records a request carries.

kafkahooks' cost is per request, not per record: a service that sends small batches pays it more
often for the same records. ``kafkahooks bench --batch-records 1 --batch-records 10 ...`` runs the
produce workload with the producer's batch size fitted to that many records (and batches leaving
when full), reads back from the broker how many records each request actually carried, and
reports the mode's extra CPU per request: (CPU per message of the mode's process minus the bare
one's, from the same pair) times records per request.
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
        """Per (client, mode, size): medians over the pairs of records per request (measured on the
        mode's topic), CPU per message of each side, the CPU ratio and the extra CPU per request."""
        out = []
        for size, results in sorted(self.by_size.items()):
            pairs: dict[int, dict[str, dict[str, Any]]] = {}
            for run in results.runs:
                if run.get("ok"):
                    pairs.setdefault(run["pair"], {})["bare" if run["mode"] == "bare" else "mode"] = run
            groups: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
            for pair in pairs.values():
                if "bare" in pair and "mode" in pair:
                    mine = pair["mode"]
                    groups.setdefault((mine["client"], mine["mode"]), []).append((pair["bare"], mine))
            for (client, mode), found in sorted(groups.items()):
                per_request = [m.get("records_per_request") or float(size) for _, m in found]
                records = statistics.median(per_request)
                out.append(
                    {
                        "client": client,
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
                            [
                                (m["cpu_us_per_msg"] - b["cpu_us_per_msg"]) * (m.get("records_per_request") or size)
                                for b, m in found
                            ],
                        ),
                    }
                )
        return out


def _spread(name: str, values: list[float]) -> dict[str, float]:
    """The median of ``values`` and its interquartile range (``name``, ``name_p25``, ``name_p75``):
    a per-request figure multiplies the per-message difference, noise included, by the records
    a request carries, so at a thousand records it is wide and the plot says so."""
    ordered = sorted(values)
    if len(ordered) < 2:
        return {name: ordered[0], f"{name}_p25": ordered[0], f"{name}_p75": ordered[0]}
    low, _, high = statistics.quantiles(ordered, n=4, method="inclusive")
    return {name: statistics.median(ordered), f"{name}_p25": low, f"{name}_p75": high}


def run_per_request(config: BenchConfig, sizes: tuple[int, ...], console: Console | None = None) -> PerRequest:
    """The produce workload once per size in ``sizes`` (records per request), every mode of ``config``."""
    console = console or Console()
    found = PerRequest(config=dataclasses.asdict(config), environment={})
    for size in sizes:
        console.print(f"{size} record{'s' if size != 1 else ''} per request", style="bold", highlight=False)
        results = run_benchmark(dataclasses.replace(config, workloads=("produce",), batch_records=size), console)
        found.by_size[size] = results
        found.environment = results.environment
    found.config["batch_records"] = list(sizes)
    return found


def per_request_table(found: PerRequest) -> Table:
    table = Table(
        title="CPU per Produce request over the bare client",
        caption=f"median of {found.config['rounds']} pairs; records per request read back from the broker",
    )
    for name in ("client", "mode"):
        table.add_column(name, overflow="fold")
    for name in ("records/request", "bare CPU µs/msg", "CPU ratio", "extra CPU µs/request"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in found.summary():
        table.add_row(
            row["client"],
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
