"""`layerprop ARGS...` in which the first start's workers cannot set up their process group, as
gloo fails when a stray connection reaches its port ("Gloo connectFullMesh failed ...").

    LAYERPROP_TEST_JOIN_MARKER=FILE python flaky_join_cli.py train ... --nproc 2

The workers import this script (as multiprocessing's main module), so the patch of
init_process_group is made on import; FILE records the first start's run id.
"""

import contextlib
import os
import sys
from pathlib import Path

import torch.distributed as dist


def first_start(marker: Path) -> bool:
    """True in the workers of the first launch that reaches here (its run id, linked atomically)."""
    run = os.environ["TORCHELASTIC_RUN_ID"]
    mine = marker.with_name(f"{run}.{os.getpid()}")
    mine.write_text(run)
    with contextlib.suppress(FileExistsError):
        os.link(mine, marker)
    return marker.read_text() == run


_real_init = dist.init_process_group


def flaky_init(*args, **kw):
    if first_start(Path(os.environ["LAYERPROP_TEST_JOIN_MARKER"])):
        raise RuntimeError("Gloo connectFullMesh failed with [pair.cc:553] Connection closed by peer (simulated)")
    return _real_init(*args, **kw)


if os.environ.get("LAYERPROP_TEST_JOIN_MARKER"):
    dist.init_process_group = flaky_init

if __name__ == "__main__":
    from layerprop.cli import main
    main(sys.argv[1:])
