"""The ``kafkahooks`` command."""

from __future__ import annotations

import click

from kafkahooks._version import __version__
from kafkahooks.bench._ablations import ABLATED_BASES, ABLATION_MODES, ABLATIONS, ablation_modes
from kafkahooks.bench._modes import DECOMPOSITION, DEFAULT_MODES, MODES
from kafkahooks.cli import _output


def _chosen_modes(modes: tuple[str, ...], decompose: bool, ablate: tuple[str, ...]) -> list[str]:
    """What ``kafkahooks bench`` runs: the modes asked for, plus ``--decompose``'s and each
    ``--ablate``'s; the default modes when nothing is asked for."""
    extra = [*(DECOMPOSITION if decompose else ()), *(m for base in ablate for m in ablation_modes(base))]
    return list(dict.fromkeys([*modes, *extra] if extra else modes or DEFAULT_MODES))


def _require_broker(bootstrap: str | None) -> None:
    """A one-line error, at once, when the Kafka the user named does not answer."""
    if bootstrap:
        from kafkahooks.broker import reachable

        if not reachable(bootstrap):
            raise click.ClickException(f"no Kafka broker answers at {bootstrap}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kafkahooks")
def main() -> None:
    """See inside Python Kafka clients: broker hooks, hook-level tracing, data streams."""


@main.command()
@click.option(
    "--bootstrap", envvar="KAFKAHOOKS_BOOTSTRAP", default=None, help="Use this Kafka instead of the embedded broker."
)
@click.option("--seconds", default=5.0, show_default=True, help="How long the checkout service produces.")
@click.option("--rate", default=2000, show_default=True, help="Orders per second the checkout service sends.")
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default="kafkahooks-demo",
    show_default=True,
    help="Directory for the checkpoint dump and the map (HTML, PNG).",
)
def demo(bootstrap: str | None, seconds: float, rate: int, output: str) -> None:
    """A three-service pipeline with tracing="hooks": its spans, and its data-stream map."""
    with _output.needs("kafkahooks demo"):
        from kafkahooks.cli._demo import run_demo

    _require_broker(bootstrap)
    with _output.needs("kafkahooks demo"):
        run_demo(bootstrap, seconds, rate, output)


@main.command()
@click.argument("dumps", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--slowest", type=click.IntRange(0), default=10, show_default=True, help="Slowest requests to list.")
@click.option("--json", "as_json", is_flag=True, help="Write the breakdown as JSON (for tools) instead of tables.")
def latency(dumps: tuple[str, ...], slowest: int, as_json: bool) -> None:
    """Where requests spend their time, from flight-recorder dumps (FlightRecorder.dump): per
    client, broker and request key, p50/p99/max of write wait, time to write, read wait, time to
    read and the whole request, with a verdict on which part is slow and the slowest requests."""
    import json

    from kafkahooks.latency._analysis import breakdown, load

    try:
        rows, skipped = load(dumps)
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read the dumps: {exc}") from exc
    if not rows:
        raise click.ClickException(f"{', '.join(dumps)}: no flight-recorder requests")
    result = breakdown(rows, slowest=slowest, skipped=skipped)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1))
        return
    from kafkahooks.cli._latency import render

    render(result, _output.console())


@main.command(name="map")
@click.argument("dumps", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Directory for map.html and map.png.",
)
def map_command(dumps: tuple[str, ...], output: str) -> None:
    """Render the data-stream map from JSON-lines checkpoint dumps (JsonLinesExporter's, or the
    demo's): one or several (one per service, say), merged into one map."""
    from pathlib import Path

    from kafkahooks.datastreams._map import StreamMap
    from kafkahooks.datastreams._render import render_html

    stream_map = StreamMap.from_files(dumps)
    out = _output.console()
    if not stream_map.edges:
        raise click.ClickException(f"{', '.join(dumps)}: no data-stream checkpoints")
    out.print(stream_map.render_terminal())
    directory = Path(output)
    html_path, png_path = directory / "map.html", directory / "map.png"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(stream_map), encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write the map to {directory}: {exc.strerror or exc}") from exc
    written = _output.write_png(stream_map, png_path)
    out.print(f"wrote {html_path}" + (f" and {png_path}" if written else ""))


@main.command()
@click.option(
    "--bootstrap", envvar="KAFKAHOOKS_BOOTSTRAP", default=None, help="Use this Kafka instead of the embedded broker."
)
@click.option(
    "--quick",
    is_flag=True,
    help="2 rounds, a fifth of the messages, produce and consume-batch only: about a tenth of a full run "
    "(whose time grows with clients x workloads x modes x rounds).",
)
@click.option(
    "--client",
    "clients",
    multiple=True,
    type=click.Choice(["aiokafka", "kafka-python"]),
    help="Client(s) to run (default: both).",
)
@click.option(
    "--workload",
    "workloads",
    multiple=True,
    type=click.Choice(["produce", "consume-batch", "consume-record"]),
    help="Workload(s) (default: all).",
)
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(list(MODES)),
    help="Mode(s) to compare with bare (default: "
    + ", ".join(name for name, mode in MODES.items() if mode.default and name != "bare")
    + "): "
    + "; ".join(f"{name}: {mode.description}" for name, mode in MODES.items() if name not in ABLATION_MODES)
    + ".",
)
@click.option(
    "--decompose",
    is_flag=True,
    help=f'What tracing="hooks" costs piece by piece: the modes {", ".join(DECOMPOSITION)} (with any --mode).',
)
@click.option(
    "--ablate",
    "ablate",
    multiple=True,
    type=click.Choice(list(ABLATED_BASES)),
    help="What each piece of kafkahooks' machinery costs inside a mode: the mode, two floors (inject-none, "
    "inject-header: a batch header injector adding nothing, or one constant header) and the mode with each "
    "piece taken out in turn: " + ", ".join(f"-no-{name} ({what})" for name, (what, _, _) in ABLATIONS.items()) + ".",
)
@click.option(
    "--method",
    type=click.Choice(["separate", "interleaved"]),
    default="separate",
    show_default=True,
    help="separate: a fresh process per side, the two taking turns chunk by chunk (the benchmark of record); "
    "interleaved: both sides in one process (a diagnostic: it charges part of a mode's cost to the bare side).",
)
@click.option(
    "--batch-records",
    "batch_records",
    type=int,
    multiple=True,
    help="Records per Produce request (repeat for several, e.g. 1, 10, 100, 1000): the produce workload with "
    "batches fitted to that many records (with --workload consume-batch/consume-record: the consumers read a "
    "topic written in such batches); writes per-request.json and per-request.png (CPU per request or fetched "
    "batch over bare).",
)
@click.option(
    "--steady-heap/--glibc-heap",
    "steady_heap",
    default=True,
    show_default=True,
    help="steady: both sides' workers keep freed memory (glibc MALLOC_MMAP_THRESHOLD_ 32 MiB, "
    "MALLOC_TRIM_THRESHOLD_ 64 MiB), so neither pays page faults that the other avoids by holding more memory; "
    "glibc: glibc's adaptive defaults (the bare aiokafka producer then faults ~13 times per 1 000 messages).",
)
@click.option(
    "--export-interval",
    "export_interval_s",
    type=click.FloatRange(min=0.001),
    default=None,
    help="Seconds between the export worker's passes in the mode's process (default: the library's 0.5).",
)
@click.option("--rounds", type=int, default=None, help="Rounds per mode (default 5; --quick 2).")
@click.option(
    "--messages", type=int, default=0, help="Messages per side and round (default per client: 100 000 / 30 000)."
)
@click.option(
    "--chunk", type=int, default=0, help="Messages per interleaved chunk (default per client: 5 000 / 2 000)."
)
@click.option("--value-size", type=int, default=100, show_default=True, help="Bytes per message value.")
@click.option("--linger-ms", type=int, default=5, show_default=True)
@click.option("--acks", type=click.Choice(["0", "1", "all"]), default="1", show_default=True)
@click.option(
    "--compression",
    type=click.Choice(["gzip", "snappy", "lz4", "zstd"]),
    default=None,
    help="Codec of every batch produced: the produce workload's and those the consume workloads read "
    "(default: none; snappy, lz4 and zstd need the 'codecs' extra, in 'bench').",
)
@click.option("--partitions", type=int, default=1, show_default=True)
@click.option(
    "--output",
    type=click.Path(file_okay=False),
    default="bench-results",
    show_default=True,
    help="Directory for throughput.json and throughput.png.",
)
def bench(
    bootstrap: str | None,
    quick: bool,
    clients: tuple[str, ...],
    workloads: tuple[str, ...],
    modes: tuple[str, ...],
    decompose: bool,
    ablate: tuple[str, ...],
    method: str,
    batch_records: tuple[int, ...],
    rounds: int | None,
    messages: int,
    chunk: int,
    value_size: int,
    linger_ms: int,
    acks: str,
    compression: str | None,
    partitions: int,
    output: str,
    steady_heap: bool,
    export_interval_s: float | None,
) -> None:
    """Throughput of the bare clients against every kafkahooks mode and OpenTelemetry's instrumentations."""
    from pathlib import Path

    from kafkahooks.bench import (
        BenchConfig,
        per_request_table,
        run_benchmark,
        run_per_request,
        save,
        save_per_request,
        summary_table,
    )
    from kafkahooks.bench._modes import missing

    _require_broker(bootstrap)
    if any(k <= 0 for k in batch_records):
        raise click.BadParameter("must be positive", param_hint="--batch-records")
    chosen = _chosen_modes(modes, decompose, ablate)
    for name in list(chosen):
        served = tuple(c for c in clients or ("aiokafka", "kafka-python") if MODES[name].serves(c))
        lacking = missing(MODES[name], served)
        if not served:
            click.echo(f"skipping mode {name}: not for {', '.join(clients)}", err=True)
            chosen.remove(name)
        elif lacking:
            click.echo(f"skipping mode {name}: needs {', '.join(lacking)} (pip install 'kafkahooks[bench]')", err=True)
            chosen.remove(name)
    if not chosen:
        raise click.ClickException("no benchmark mode left to run")
    modes = tuple(chosen)
    config = BenchConfig(
        clients=clients or ("aiokafka", "kafka-python"),
        workloads=workloads
        or (("produce", "consume-batch") if quick else ("produce", "consume-batch", "consume-record")),
        modes=modes,
        rounds=rounds or (2 if quick else 5),
        messages=messages,
        chunk=chunk,
        value_size=value_size,
        linger_ms=linger_ms,
        acks=acks,
        compression=compression,
        partitions=partitions,
        bootstrap=bootstrap,
        quick=quick,
        method=method,
        steady_heap=steady_heap,
        export_interval_s=export_interval_s or 0.0,
    )
    out = _output.console()
    with _output.needs("kafkahooks bench"):
        if batch_records:
            per_request = run_per_request(config, batch_records, out, workloads or ("produce",))
            out.print(per_request_table(per_request))
            json_path, png = save_per_request(per_request, Path(output))
        else:
            results = run_benchmark(config, out)
            out.print(summary_table(results))
            json_path, png = save(results, Path(output))
    out.print(f"every run: [bold]{json_path}[/bold]" + (f"   plot: [bold]{png}[/bold]" if png else ""))
    if png is None:
        click.echo("the plot needs matplotlib: pip install 'kafkahooks[plot]'", err=True)


__all__ = ["main"]
