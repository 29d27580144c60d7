"""Shared pytest options.

``SCIPY_ARRAY_API=1`` is set (unless already set) before anything imports scipy, so that
scikit-learn's array-API estimator checks run (tests/test_sklearn_checks.py) instead of being
skipped; subprocesses started by the tests inherit it. The whole suite passes with it.

``--fuzz`` turns on long fuzzing: tests marked ``@pytest.mark.fuzz`` run (they are skipped
otherwise) and property tests that read ``LAYERPROP_FUZZ_EXAMPLES`` get many more examples
(2000 each unless that variable is already set).
"""

import os

import pytest

FUZZ_EXAMPLES_WITH_FLAG = "2000"


def pytest_addoption(parser):
    parser.addoption(
        "--fuzz",
        action="store_true",
        default=False,
        help="run long fuzz tests (more hypothesis examples; see LAYERPROP_FUZZ_EXAMPLES)",
    )


def pytest_configure(config):
    os.environ.setdefault("SCIPY_ARRAY_API", "1")  # read by scipy at import, by scikit-learn at set_config
    if config.getoption("--fuzz"):
        os.environ.setdefault("LAYERPROP_FUZZ_EXAMPLES", FUZZ_EXAMPLES_WITH_FLAG)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--fuzz"):
        return
    skip = pytest.mark.skip(reason="long fuzzing: run with --fuzz")
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(skip)
