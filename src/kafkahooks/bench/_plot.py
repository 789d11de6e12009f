"""The benchmark's picture: ratio to the bare client per mode, one panel per client and workload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter, StrMethodFormatter

from kafkahooks.bench._results import Results

COLORS = {
    "bare": "#9e9e9e",
    "off": "#64b5f6",
    "hooks": "#1e88e5",
    "hooks-1pct": "#90caf9",
    "hooks-stuck": "#0d47a1",
    "dsm": "#43a047",
    "dsm-record": "#81c784",
    "hooks-record": "#5c6bc0",
    "header": "#bdbdbd",
    "records": "#fb8c00",
    "otel": "#e53935",
    "otel-1pct": "#ef9a9a",
    "ddtrace": "#632ca6",
}


def plot(results: Results, path: Path) -> Path:
    """Draw every (client, workload) as bars per mode: median throughput ratio to bare (solid) and
    median CPU-per-message ratio to bare (hatched), each taken within a round; and save it."""
    fig = figure(results)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure(results: Results) -> Any:
    """The figure :func:`plot` saves."""
    summary = results.summary()
    clients = sorted({r["client"] for r in summary})
    workloads = [w for w in ("produce", "consume-batch", "consume-record") if any(r["workload"] == w for r in summary)]
    fig, axes = plt.subplots(
        len(clients), len(workloads), figsize=(4.6 * len(workloads), 3.8 * len(clients)), squeeze=False, sharey=True
    )
    values = [v for r in summary for v in (r["ratio_to_bare"], r.get("cpu_ratio_to_bare")) if v]
    # A log scale centred on 1: a mode at 0.03x and one at 0.99x stay readable side by side, and
    # bars grow from 1 (down: slower or cheaper, up: faster or dearer).
    top = max([1.25] + [v * 1.6 for v in values])
    bottom = min([0.8] + [v / 1.6 for v in values])
    width = 0.4
    for i, client in enumerate(clients):
        for j, workload in enumerate(workloads):
            ax = axes[i][j]
            found = [r for r in summary if r["client"] == client and r["workload"] == workload and r["ratio_to_bare"]]
            # bare is 1 by definition: its rate goes in the title, not in a bar whose labels sit on the 1 line
            bare = next((r for r in found if r["mode"] == "bare"), None)
            rows = [r for r in found if r["mode"] != "bare"]
            xs = list(range(len(rows)))
            colors = [COLORS.get(r["mode"], "#757575") for r in rows]
            ratios = [r["ratio_to_bare"] for r in rows]
            cpus = [r.get("cpu_ratio_to_bare") or 0.0 for r in rows]
            tput = ax.bar([x - width / 2 for x in xs], [r - 1.0 for r in ratios], width, bottom=1.0, color=colors)
            cpu = ax.bar(
                [x + width / 2 for x in xs],
                [(c - 1.0) if c else 0.0 for c in cpus],
                width,
                bottom=1.0,
                color=colors,
                alpha=0.45,
                hatch="///",
            )
            # Labels go past the bar's end and past the reference lines near 1 (0.98, 1.03), by a
            # few points, so none sits on a line or on its neighbour.
            for bar, ratio, row in zip(tput, ratios, rows, strict=True):
                up = ratio >= 1.0
                ax.annotate(
                    f"{ratio:.2f}\n{row['msgs_per_s'] / 1000:.0f}k/s",
                    (bar.get_x() + bar.get_width() / 2, max(ratio, 1.03) if up else min(ratio, 0.98)),
                    xytext=(0, 3 if up else -3),
                    textcoords="offset points",
                    ha="center",
                    va="bottom" if up else "top",
                    fontsize=6,
                )
            for bar, value, ratio in zip(cpu, cpus, ratios, strict=True):
                if value:
                    up = value >= 1.0
                    # Near 1, on the same side as its throughput label (two lines, wider than a
                    # bar): above or below that label, not beside it.
                    clear = 16 if up == (ratio >= 1.0) and 0.9 < value < 1.12 else 0
                    ax.annotate(
                        f"{value:.2f}",
                        (bar.get_x() + bar.get_width() / 2, max(value, 1.03) if up else min(value, 0.98)),
                        xytext=(0, 3 + clear if up else -3 - clear),
                        textcoords="offset points",
                        ha="center",
                        va="bottom" if up else "top",
                        fontsize=6,
                        color="#424242",
                    )
            ax.axhline(1.0, color="#424242", linewidth=0.8)
            ax.axhline(0.98, color="#1e88e5", linewidth=0.8, linestyle="--")
            ax.axhline(1.03, color="#e53935", linewidth=0.8, linestyle=":")
            ax.set_yscale("log")
            ax.set_ylim(bottom, top)
            ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_yticks([t for t in (0.03, 0.1, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0) if bottom <= t <= top])
            ax.set_xticks(xs, [r["mode"] for r in rows])
            title = f"{client} · {workload}"
            if bare is not None:
                title += f" (bare {bare['msgs_per_s'] / 1000:,.0f}k msg/s)"
            ax.set_title(title, fontsize=10)
            ax.tick_params(axis="x", labelrotation=45, labelsize=8)
            if j == 0:
                ax.set_ylabel("ratio to bare (median, log scale)")
    env = results.environment
    fig.suptitle(
        f"kafkahooks {env['kafkahooks']}: throughput (solid) and CPU per message (hatched) relative to the bare "
        f"client\n(Python {env['python']}, {env['cpus']} CPUs, {results.config['rounds']} rounds; "
        "dashed: throughput 0.98, dotted: CPU 1.03)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def plot_per_request(summary: list[dict[str, Any]], environment: dict[str, Any], path: Path) -> Path:
    """Two panels per workload against records per Produce request or per fetched batch (log
    scale): the extra CPU each request (batch) costs over the bare client, and the CPU-per-message
    ratio to bare; saved to ``path``."""
    fig = per_request_figure(summary, environment)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_request_figure(summary: list[dict[str, Any]], environment: dict[str, Any]) -> Any:
    """The figure :func:`plot_per_request` saves."""
    workloads = sorted({r.get("workload", "produce") for r in summary}, key=lambda w: (w != "produce", w))
    fig, axes = plt.subplots(len(workloads), 2, figsize=(11, 4.2 * len(workloads)), squeeze=False)
    styles = {"aiokafka": "-", "kafka-python": "--"}
    sizes = sorted({r["batch_records"] for r in summary})
    for (cost, ratio), workload in zip(axes, workloads, strict=True):
        mine = [r for r in summary if r.get("workload", "produce") == workload]
        unit = "Produce request" if workload == "produce" else "fetched batch"
        for client, mode in sorted({(r["client"], r["mode"]) for r in mine}):
            rows = sorted(
                (r for r in mine if r["client"] == client and r["mode"] == mode), key=lambda r: r["batch_records"]
            )
            _per_request_lines(cost, ratio, rows, client, mode, styles.get(client, "-"))
        for ax in (cost, ratio):
            ax.set_xscale("log")
            ax.set_xticks(sizes, [str(s) for s in sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(f"records per {unit} (log scale)")
            ax.grid(True, which="both", alpha=0.3)
        cost.set_title(workload, fontsize=9, loc="left")
        cost.set_ylabel(f"extra CPU per {unit}, µs (bars: quartiles)", fontsize=8)
        cost.axhline(0, color="#424242", linewidth=0.8)
        ratio.set_ylabel("CPU per message, ratio to bare")
        ratio.axhline(1.0, color="#424242", linewidth=0.8)
        ratio.axhline(1.05, color="#e53935", linewidth=0.8, linestyle=":")
        ratio.axhline(1.02, color="#1e88e5", linewidth=0.8, linestyle="--")
        # Long handles: the clients differ by line style only, and a default handle is all marker.
        ratio.legend(fontsize=7, handlelength=4)
    what = {True: "a Produce request or a fetched batch", False: "a fetched batch"}["produce" in workloads]
    what = "a Produce request" if workloads == ["produce"] else what
    fig.suptitle(
        f"kafkahooks {environment.get('kafkahooks', '')}: what {what} costs, by its size "
        f"(Python {environment.get('python', '')}, {environment.get('cpus', '')} CPUs; dashed 1.02, dotted 1.05)",
        fontsize=10,
    )
    fig.tight_layout()
    for _, ratio in axes:
        _fold_overlapping_labels(fig, ratio)
    return fig


def _fold_overlapping_labels(fig: Any, ax: Any) -> None:
    """Several modes read nearly the same ratio at the same size, near 1, and their labels would
    overlap: each label that would is folded into the one above it, which then reads as the
    range ("1.08-1.01"), so every figure stays readable and none is lost off the panel."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    heads: list[tuple[Any, Any, str]] = []  # (label, its box, its own value's text)
    for text in sorted(ax.texts, key=lambda t: -float(t.get_text())):
        box = text.get_window_extent(renderer)
        head = next((h for h in heads if box.overlaps(h[1])), None)
        if head is None:
            heads.append((text, box, text.get_text()))
            continue
        text.set_visible(False)
        if text.get_text() != head[2]:  # the head is the highest of its range, this the lowest yet
            head[0].set_text(f"{head[2]}\u2013{text.get_text()}")


def _per_request_lines(cost: Any, ratio: Any, rows: list[dict[str, Any]], client: str, mode: str, style: str) -> None:
    """One (client, mode)'s line in each panel: the extra CPU with its quartiles, the ratio annotated."""
    xs = [r["records_per_request"] for r in rows]
    color = COLORS.get(mode, "#757575")
    label = f"{client} {mode}"
    cost.errorbar(
        xs,
        [r["extra_cpu_us_per_request"] for r in rows],
        yerr=[
            [
                r["extra_cpu_us_per_request"] - r.get("extra_cpu_us_per_request_p25", r["extra_cpu_us_per_request"])
                for r in rows
            ],
            [
                r.get("extra_cpu_us_per_request_p75", r["extra_cpu_us_per_request"]) - r["extra_cpu_us_per_request"]
                for r in rows
            ],
        ],
        fmt=style,
        color=color,
        marker="o",
        capsize=3,
        label=label,
    )
    ratio.plot(xs, [r["cpu_ratio_to_bare"] for r in rows], style, color=color, marker="o", label=label)
    for r in rows:  # the ratios only: the per-request figures read off the axis, bars beside them
        last = r is rows[-1]  # the panel's right edge: the label goes to the point's left
        ratio.annotate(
            f"{r['cpu_ratio_to_bare']:.2f}",
            (r["records_per_request"], r["cpu_ratio_to_bare"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(-4 if last else 4, -3),
            ha="right" if last else "left",
        )
