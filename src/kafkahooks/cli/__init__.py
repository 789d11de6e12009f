"""The ``kafkahooks`` command."""

from __future__ import annotations

import click

from kafkahooks._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kafkahooks")
def main() -> None:
    """See inside Python Kafka clients: broker hooks, hook-level tracing, data streams."""


@main.command()
@click.option(
    "--bootstrap", envvar="KAFKAHOOKS_BOOTSTRAP", default=None, help="Use this Kafka instead of the embedded broker."
)
@click.option("--records", default=20_000, show_default=True, help="Records to produce and consume.")
@click.option("--value-size", default=100, show_default=True, help="Bytes per record value.")
def demo(bootstrap: str | None, records: int, value_size: int) -> None:
    """Produce and consume through both wrapped clients and show what the broker hooks saw."""
    from kafkahooks.cli._demo import run_demo

    run_demo(bootstrap, records, value_size)


__all__ = ["main"]
