"""The ``layerprop`` command (click): train, predict, evaluate, inspect, export, trace,
gradcheck, report, datasets, playground.

Each command is a thin wrapper over the library (``layerprop.data``, ``layerprop.sgd``,
``layerprop.io``, ...). Heavy libraries (scikit-learn, matplotlib, pandas, torch) are imported
inside the commands that use them, so ``layerprop --help`` starts fast.
Exit codes: 0 ok; 1 bad data, bad model file or failed run (one ``Error: ...`` line on
stderr); 2 usage error (click).
"""

from __future__ import annotations

import click

from .. import __version__
from ._common import example
from .analysis import gradcheck_command, trace_command
from .models import evaluate_command, export_command, inspect_command, predict_command
from .playground_cmd import playground_command
from .report_cmd import report_command
from .train import datasets_command, train_command

__all__ = ["main", "cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=example('layerprop train && layerprop evaluate model.safetensors digits'))
@click.version_option(__version__, "--version", "-V", prog_name="layerprop",
                      message="%(prog)s %(version)s")
@click.option("--traceback", is_flag=True, hidden=True,
              help="Show the Python traceback instead of one Error: line (for bug reports).")
def cli(traceback):
    """layerprop: the book's SGD and Backpropagation (SSBD 20.6) on your data.

    Train a layered network, then predict, evaluate, inspect, trace one example through
    backpropagation in the book's notation, check the gradient, or write an HTML report.
    DATA is a CSV/TSV file (header row), a Parquet or NPZ file, or a bundled data set name
    (see `layerprop datasets`). MODEL is a .safetensors file written by `layerprop train`.

    \b
    Exit codes: 0 ok, 1 bad data or model (one "Error:" line), 2 usage error.
    """


for _command in (train_command, datasets_command, predict_command, evaluate_command, inspect_command,
                 export_command, trace_command, gradcheck_command, report_command, playground_command):
    cli.add_command(_command)


def main(argv=None):
    """Entry point of the ``layerprop`` script and ``python -m layerprop``."""
    return cli.main(args=argv, prog_name="layerprop")
