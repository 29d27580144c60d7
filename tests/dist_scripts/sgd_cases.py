"""Run under torchrun: every case of cases.py with lp.sgd(..., distributed=True), plus checkpoints,
resume, a callback that stops on one rank, the start-up errors and the estimators. Each rank pickles what it saw
to OUTDIR/rank{r}.pkl; tests/test_distributed.py compares it with single-process runs.

    torchrun --standalone --nproc-per-node 2 sgd_cases.py OUTDIR [OTHER_CHECKPOINT_DIR]
"""

import os
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cases import CASES, ESTIMATORS, X, Y, kwargs, network, run_estimator, summary  # noqa: E402

import layerprop as lp  # noqa: E402


def attempt(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - recorded for the test
        return {"error": type(e).__name__, "message": str(e)}


def main(out, other_checkpoint=None):
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    seen = {}
    for case in CASES:
        seen[case] = summary(lp.sgd(network(), X, Y, distributed=True, **kwargs(case)))

    # a callback that says stop on rank 1 only, at its second evaluation: every rank stops there
    calls = []

    def stop_on_rank_1(row):
        calls.append(row["iteration"])
        return not (rank == 1 and len(calls) == 2)
    seen["callback"] = summary(lp.sgd(network(), X, Y, distributed=True, callback=stop_on_rank_1,
                                      **dict(kwargs("sgd_masks_l2"), eval_every=5)))

    # checkpoints: 20 iterations, then resume to 40 (= the sgd_masks_l2 case)
    ckpt = Path(out) / f"ckpt{size}"
    kw = kwargs("sgd_masks_l2")
    lp.sgd(network(), X, Y, distributed=True, checkpoint=ckpt, **dict(kw, iterations=20))
    seen["checkpoint_files"] = sorted(p.name for p in ckpt.iterdir()) if ckpt.exists() else None
    seen["resumed"] = summary(lp.sgd(network(), X, Y, distributed=True, checkpoint=ckpt, resume=True, **kw))
    if other_checkpoint:  # written by a run of another size
        seen["resume_other_size"] = attempt(lambda: lp.sgd(network(), X, Y, distributed=True,
                                                           checkpoint=other_checkpoint, resume=True, **kw))

    # start-up errors, raised on every rank alike
    seen["small_batch"] = attempt(lambda: lp.sgd(network(), X, Y, distributed=True, **dict(kw, batch_size=size - 1 or 1)))
    X_other = X + (rank == 1)
    seen["different_data"] = attempt(lambda: lp.sgd(network(), X_other, Y, distributed=True, **kw))
    seen["float32"] = summary(lp.sgd(network(dtype="float32"), X, Y, distributed=True, **kw))

    # the estimators (distributed=True), and one without a seed: every rank draws rank 0's numbers
    for name in ESTIMATORS:
        seen[name] = run_estimator(name, True)
    seen["clf_unseeded"] = run_estimator("clf_adam_early_stopping", True, unseeded=True)
    with open(Path(out) / f"rank{rank}.pkl", "wb") as f:
        pickle.dump(seen, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
