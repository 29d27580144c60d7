"""The atheris harnesses under fuzz/, imported by the hypothesis tests that share their properties."""

import importlib.util
from pathlib import Path


def load_harness(name):
    """The module fuzz/<name>.py (imported without atheris; only its main() needs it)."""
    path = Path(__file__).resolve().parents[1] / "fuzz" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
