"""The benchmark's picture: ratio to the bare client per mode, one panel per client and workload."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from kafkahooks.bench._runner import Results

COLORS = {
    "bare": "#9e9e9e",
    "off": "#64b5f6",
    "hooks": "#1e88e5",
    "hooks-stuck": "#0d47a1",
    "dsm": "#43a047",
    "records": "#fb8c00",
    "otel": "#e53935",
    "otel-1pct": "#ef9a9a",
}


def plot(results: Results, path: Path) -> Path:
    """Draw every (client, workload) as a bar chart of median throughput ratio to bare, and save it."""
    summary = results.summary()
    clients = sorted({r["client"] for r in summary})
    workloads = [w for w in ("produce", "consume-batch", "consume-record") if any(r["workload"] == w for r in summary)]
    fig, axes = plt.subplots(
        len(clients), len(workloads), figsize=(4.2 * len(workloads), 3.4 * len(clients)), squeeze=False, sharey=True
    )
    for i, client in enumerate(clients):
        for j, workload in enumerate(workloads):
            ax = axes[i][j]
            rows = [r for r in summary if r["client"] == client and r["workload"] == workload and r["ratio_to_bare"]]
            names = [r["mode"] for r in rows]
            ratios = [r["ratio_to_bare"] for r in rows]
            bars = ax.bar(names, ratios, color=[COLORS.get(n, "#757575") for n in names])
            for bar, ratio, row in zip(bars, ratios, rows, strict=True):
                ax.annotate(
                    f"{ratio:.2f}\n{row['msgs_per_s'] / 1000:.0f}k/s",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
            ax.axhline(1.0, color="#424242", linewidth=0.8)
            ax.axhline(0.98, color="#1e88e5", linewidth=0.8, linestyle="--")
            ax.set_ylim(0, 1.3)
            ax.set_title(f"{client} · {workload}", fontsize=10)
            ax.tick_params(axis="x", labelrotation=45, labelsize=8)
            if j == 0:
                ax.set_ylabel("throughput / bare (median)")
    env = results.environment
    fig.suptitle(
        f"kafkahooks {env['kafkahooks']}: throughput relative to the bare client "
        f"(Python {env['python']}, {env['cpus']} CPUs, {results.config['rounds']} rounds; dashed: 0.98)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
