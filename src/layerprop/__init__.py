"""layerprop: the book's SGD and Backpropagation for layered networks (SSBD 20.6)."""

from importlib import import_module as _import_module

from .activations import ACTIVATIONS, Activation
from .data import DataError, load_data
from .gradcheck import GradcheckResult, gradcheck
from .graph import LayeredGraph
from .io import ModelFileError, load, save
from .jacobian import chain_rule_check, jacobian_w, jacobian_x
from .losses import LOSSES, Loss
from .network import Gradient, Network, Trace
from .sgd import DivergenceError, SGDResult, sgd
from .theory import network_facts

__version__ = "0.1.0"

# Names from modules that import heavier libraries load on first use (PEP 562), so that
# `import layerprop` and the `layerprop` command start fast.
# A lazy name must differ from its module's name (importing a submodule binds the module there).
_LAZY = {
    "MLPClassifier": "estimators", "MLPRegressor": "estimators",
    "to_onnx": "onnx_export",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(_import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'layerprop' has no attribute {name!r}")


__all__ = ["ACTIVATIONS", "Activation", "LOSSES", "Loss", "LayeredGraph", "Network", "Trace",
           "Gradient", "sgd", "SGDResult", "DivergenceError", "gradcheck", "GradcheckResult",
           "jacobian_w", "jacobian_x", "chain_rule_check", "network_facts", "save", "load",
           "ModelFileError", "DataError", "load_data", *_LAZY]
