"""Progress of a training run: a tqdm bar on a terminal, a line per evaluation when verbose."""

from __future__ import annotations

import sys


def _fmt(row) -> str:
    """One evaluation as a short line: iteration, epoch, eta, losses, metric, ||v||."""
    parts = [f"iteration {row['iteration']}", f"epoch {row['epoch']:.2f}", f"eta {row['eta']:.3g}"]
    for key in ("train_loss", "val_loss", "val_metric", "grad_norm"):
        if row.get(key) is not None:
            parts.append(f"{key} {row[key]:.6g}")
    return "  ".join(parts)


class Progress:
    """A bar from ``initial`` to ``total`` iterations (when ``enabled``) and per-evaluation lines
    (when ``verbose``), both on ``stream`` (stderr by default).

    ``enabled=None`` means: a bar when the stream is a terminal.
    """

    def __init__(self, total, initial=0, enabled=None, verbose=False, stream=None):
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.verbose = bool(verbose)
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm  # only when a bar is shown
            self.bar = tqdm(total=total, initial=initial, file=self.stream, unit="it", dynamic_ncols=True,
                            leave=True, desc="sgd")

    def update(self, n: int) -> None:
        """``n`` more iterations done."""
        if self.bar is not None:
            self.bar.update(n)

    def evaluation(self, row: dict) -> None:
        """Show an evaluation: in the bar's postfix, and as a line when verbose."""
        if self.bar is not None:
            post = {k: f"{row[k]:.4g}" for k in ("train_loss", "val_loss", "val_metric") if row.get(k) is not None}
            self.bar.set_postfix(post, refresh=False)
        if self.verbose:
            line = _fmt(row)
            if self.bar is not None:
                self.bar.write(line, file=self.stream)
            else:
                print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
