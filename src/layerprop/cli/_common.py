"""Shared pieces of the command line: error handling, shared options, output files, JSON."""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import click
import numpy as np

# Exceptions that mean "bad data, bad model file or bad setting": one `Error:` line, exit 1.
_USER_ERRORS = (ValueError, TypeError, OSError, MemoryError, ArithmeticError)


def one_line(message: str) -> str:
    """A message on one line (the CLI prints exactly one `Error:` line)."""
    return " ".join(str(message).split())


def error_message(exc: BaseException) -> str:
    """The message for an exception: OSError as 'file: problem', MemoryError spelled out."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        return one_line(f"{where}: {exc.strerror}" if where else exc.strerror)
    if isinstance(exc, MemoryError):
        return "out of memory (the data or the network is too large for this machine)"
    text = one_line(str(exc))
    return text or type(exc).__name__


def friendly_errors(f):
    """Turn library errors (DataError, ModelFileError, DivergenceError, ValueError...) into
    click.ClickException: `Error: <message>` on stderr, exit 1, no traceback.

    With `layerprop --traceback ...` the original exception propagates instead."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except (click.ClickException, click.Abort, click.exceptions.Exit):
            raise
        except BrokenPipeError:  # `layerprop predict ... | head`: the reader left; stop quietly
            _silence_stdout()
            raise click.exceptions.Exit(1) from None
        except Exception as e:  # noqa: BLE001 - the boundary: every error becomes one line
            ctx = click.get_current_context(silent=True)
            if ctx is not None and (ctx.find_root().params or {}).get("traceback"):
                raise
            if isinstance(e, _USER_ERRORS) or type(e).__module__.startswith("layerprop"):
                raise click.ClickException(error_message(e)) from None
            raise click.ClickException(
                f"internal error: {type(e).__name__}: {error_message(e)} "
                "(please report it; `layerprop --traceback ...` shows where)") from None

    return wrapper


def _silence_stdout():
    """Point stdout at /dev/null so that Python's final flush does not fail again."""
    import sys

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (e.g. under CliRunner)
        pass


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON object on stdout.")(f)


def to_jsonable(x):
    """NumPy scalars/arrays as plain Python; non-finite floats as None (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, np.generic):
        return to_jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    return x


def echo_json(obj) -> None:
    click.echo(json.dumps(to_jsonable(obj), indent=2, allow_nan=False))


def check_output_path(path, what="output file") -> Path:
    """Fail early (before any work) when ``path`` cannot be written: its folder is missing,
    it is a folder, or the folder is read-only."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise click.ClickException(f"{path}: is a folder; give a file name for the {what}")
    if not folder.is_dir():
        raise click.ClickException(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise click.ClickException(f"{path}: the folder {folder} is not writable")
    return path


def write_output(path, data) -> Path:
    """Write a file atomically (a temporary file renamed over ``path``): never half-written."""
    from ..io import atomic_write

    return atomic_write(path, data)


def parse_floats(text: str, name: str) -> np.ndarray:
    """'0.1,0.2,...' as a float array; BadParameter on a non-number."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise click.BadParameter("give comma-separated numbers, e.g. 0.1,0.2", param_hint=name)
    values = []
    for n, p in enumerate(parts):
        try:
            v = float(p)
        except ValueError:
            raise click.BadParameter(f"value {n + 1} is {p!r}, not a number", param_hint=name) from None
        if not math.isfinite(v):
            raise click.BadParameter(f"value {n + 1} is {p!r}; numbers must be finite", param_hint=name)
        values.append(v)
    return np.array(values)


def format_metric(name: str, value) -> str:
    if value is None:
        return "-"
    if name in ("accuracy", "f1_macro", "balanced_accuracy"):
        return f"{100 * value:.2f}%"
    return f"{value:.4g}"


def example(command: str) -> str:
    """A command's help epilog: the Example line that ends every ``--help``."""
    return f"\b\nExample:\n  {command}"
