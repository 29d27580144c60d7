"""layerprop: the book's SGD and Backpropagation for layered networks (SSBD 20.6)."""

from importlib import import_module as _import_module

from .activations import ACTIVATIONS, Activation
from .graph import LayeredGraph
from .losses import LOSSES, Loss
from .network import Gradient, Network, Trace

__version__ = "0.1.0"

# Names from modules that import heavier libraries load on first use (PEP 562), so that
# `import layerprop` and the `layerprop` command start fast.
_LAZY = {
    "gradcheck": "gradcheck", "GradcheckResult": "gradcheck",
    "jacobian_w": "jacobian", "jacobian_x": "jacobian", "chain_rule_check": "jacobian",
    "theory": "theory", "network_facts": "theory",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(_import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'layerprop' has no attribute {name!r}")


__all__ = ["ACTIVATIONS", "Activation", "LOSSES", "Loss", "LayeredGraph", "Network", "Trace",
           "Gradient", *_LAZY]
