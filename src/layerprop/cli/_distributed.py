"""``layerprop train --nproc N`` and ``--distributed`` (issue 9): the options, their checks, and
the local launch (N workers that each run ``train`` with ``--distributed``; rank 0 writes MODEL).

The training itself is ``lp.sgd(..., distributed=True)`` (``layerprop.distributed``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import click

from ..distributed import TORCHRUN_ENV


def distributed_options(f):
    """--nproc, --distributed, --threads."""
    f = click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Compute threads per process [default: 1 with --nproc, else all].")(f)
    f = click.option("--distributed", is_flag=True,
                     help="This process is one of a run started by torchrun (e.g. multi-node with "
                          "--nnodes and --rdzv-endpoint); rank 0 writes MODEL.")(f)
    f = click.option("--nproc", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Data-parallel training on N local processes (gloo; each batch split among them).")(f)
    return f


def _require_torch(flag):
    try:
        import torch.distributed as dist
    except ImportError:
        raise click.ClickException(f"{flag} needs PyTorch (torch.distributed): pip install 'layerprop[dist]'") from None
    if not dist.is_available():
        raise click.ClickException(f"{flag}: this PyTorch build has no torch.distributed")
    return dist


def _limit_threads(threads):
    """``threads`` compute threads in this process (BLAS and torch) until the command ends."""
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(threads)
    click.get_current_context().call_on_close(limits.restore_original_limits)
    try:
        import torch
    except ImportError:
        return
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    click.get_current_context().call_on_close(lambda: torch.set_num_threads(old))


def check_processes(distributed, threads, device):
    """Before any work: ``--distributed`` needs torchrun's environment (and a GPU per rank for
    ``--device cuda``); ``--threads`` limits this process's compute threads."""
    if distributed:
        missing = [k for k in TORCHRUN_ENV if k not in os.environ]
        if missing:
            raise click.UsageError(f"--distributed is for a process started by torchrun, and this one was not "
                                   f"(no {', '.join(missing)} in the environment). Run `torchrun "
                                   f"--nproc-per-node N -m layerprop train ... --distributed`, or use --nproc N")
        _require_torch("--distributed")
        if device == "cuda":
            import torch
            if torch.cuda.is_available():  # one GPU per rank (NCCL cannot put two ranks on one GPU)
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    if threads is not None:
        _limit_threads(threads)


def is_writer() -> bool:
    """True unless this process is a rank other than 0 of a distributed run."""
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def launch_train(params: dict):
    """``train --nproc N``: N local workers (torch.distributed's elastic launcher, gloo) run the
    same command with ``--distributed``; one ``Error:`` line if one fails or is lost."""
    nproc, batch_size = params["nproc"], params["batch_size"]
    if params["distributed"]:
        raise click.UsageError("give --nproc N (start N local processes) or --distributed (started by "
                               "torchrun), not both")
    if nproc > batch_size:
        raise click.UsageError(f"--nproc {nproc} is larger than --batch-size {batch_size}: every process needs "
                               f"rows of every batch")
    if params["device"] == "cuda" and nproc > 1:
        raise click.UsageError("--device cuda with --nproc > 1: NCCL cannot put two ranks on one GPU; start one "
                               "process per GPU with torchrun and --distributed")
    _require_torch("--nproc")
    from ..distributed import DistributedError, launch, preload

    # imported once by the server that forks the workers (~2 s in each worker otherwise)
    preload("layerprop.cli._distributed", "layerprop.cli.train", "layerprop.data", "layerprop.io",
            "sklearn.datasets")

    threads = params["threads"] or 1
    worker_params = dict(params, nproc=None, distributed=True, threads=threads)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            try:
                launch(nproc, _train_worker, (worker_params,), threads=threads)
            finally:  # launch's "starting them again" notes, one line each
                for w in caught:
                    click.echo(f"Warning: {w.message}", err=True)
    except DistributedError as e:  # a lost worker, or workers that never connected
        raise click.ClickException(f"{e}; training stopped and no model was written.{_resume_hint(params)}") from None
    except CommandFailed as e:
        err = click.ClickException(e.message)
        err.exit_code = e.exit_code
        raise err from None


def _resume_hint(params):
    folder = params.get("checkpoint_dir")
    if folder is None:
        return ""
    from ..sgd import CHECKPOINT_NAME

    if not (Path(folder) / CHECKPOINT_NAME).exists():
        return " There is no checkpoint yet."
    return f" The last checkpoint in {folder} continues with --resume."


class CommandFailed(Exception):
    """A worker's ``Error:`` (message and exit code), re-raised by the launching command."""

    def __init__(self, message, exit_code):
        super().__init__(message, exit_code)
        self.message, self.exit_code = message, exit_code


def _train_worker(params):
    """One worker of ``train --nproc``: the train command with ``--distributed``."""
    from ..distributed import JoinError, WorkerLostError
    from .train import train_command

    try:
        with click.Context(train_command, info_name="train") as ctx:
            ctx.invoke(train_command.callback, **params)
    except click.ClickException as e:
        if isinstance(e.__context__, (WorkerLostError, JoinError)):  # the launcher names the lost rank,
            raise e.__context__ from None  # or starts the workers again
        raise CommandFailed(e.format_message(), e.exit_code) from None
