"""``layerprop playground``: the browser playground (needs the ``playground`` extra)."""

from __future__ import annotations

import click

from ._common import example


@click.command("playground", short_help="Serve the browser playground (the book's SGD and Backpropagation, live).",
               epilog=example("layerprop playground --port 8765"))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Any other than 127.0.0.1 exposes the playground (no login) and prints a warning.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port to listen on.")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser at the page.")
def playground_command(host, port, no_browser):
    """Serve the playground at http://HOST:PORT/: 2-D and bundled data or your CSV, any layered
    network with an editable edge set E, the book's SGD with Play/Pause/Step/Reset, and one
    example stepped through Backpropagation with the numbers in the formulas. Every number is
    computed by layerprop on this machine; the page needs no network access.
    """
    try:
        from ..playground import serve
    except ImportError as e:  # starlette/uvicorn missing
        raise click.ClickException(f"the playground needs its extra: pip install 'layerprop[playground]' ({e})") from None
    serve(host=host, port=port, open_browser=not no_browser)
