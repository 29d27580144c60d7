"""``layerprop report``: a self-contained HTML page about one model (see ``layerprop.report``)."""

from __future__ import annotations

import importlib.util

import click

from ._common import example, check_output_path, friendly_errors, write_output
from .models import load_model


@click.command("report", short_help='Write a self-contained HTML report (curves, diagram, confusion matrix).', epilog=example('layerprop report model.safetensors -o report.html --png plots/'))
@click.argument("model_path", metavar="MODEL")
@click.option("-o", "--output", default="report.html", show_default=True, metavar="REPORT.html",
              help="The HTML file to write (atomically); it opens with no network access.")
@click.option("--data", metavar="DATA", default=None,
              help="Labelled data for the confusion matrix or residual plot [default: the test split stored in MODEL].")
@click.option("--png", "png_dir", metavar="DIR", default=None, help="Also write each plot as a PNG file into DIR.")
@friendly_errors
def report_command(model_path, output, data, png_dir):
    """Write an HTML report on MODEL: training and validation curves, the network diagram
    (edges coloured by sign, shaded by magnitude), the confusion matrix or residual plot,
    the recipe and the metrics. Plots need matplotlib (the 'plot' extra).
    """
    from pathlib import Path

    from ..report import build_report

    check_output_path(output, "report")
    if png_dir is not None and importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException('--png needs matplotlib, which is not installed: pip install "layerprop[plot]"')
    if png_dir is not None and not Path(png_dir).is_dir():
        Path(png_dir).mkdir(parents=True, exist_ok=True)
    model = load_model(model_path)
    evaluation = None
    if data is not None:
        X, y = model.read_labelled(data)
        evaluation = {"source": data, "y_true": y, "y_pred": model.predict(X), "metrics": model.metrics(X, y)}
    html, pngs = build_report(model, title=Path(model_path).name, evaluation=evaluation,
                              want_png=png_dir is not None)
    for name, data_bytes in pngs.items():
        write_output(Path(png_dir) / name, data_bytes)
    write_output(output, html)
    click.echo(f"wrote {output}" + (f" and {len(pngs)} PNG file(s) in {png_dir}" if pngs else ""), err=True)
