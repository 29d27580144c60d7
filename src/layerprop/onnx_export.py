"""ONNX export: a standard ONNX graph on the raw features, for onnxruntime and other runtimes.

The graph is the book's forward pass written with ONNX operators: the stored input
standardization (Sub, Div), then for t = 0..T-1 a_{t+1} = o_t W_t^T + b_t (MatMul, Add) and
o_{t+1} = sigma_{t+1}(a_{t+1}); then Softmax and ArgMax (classifiers: outputs ``label`` and
``probabilities``) or the stored target unscaling (regressors: output ``variable``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ._xp import to_numpy
from .network import Network

__all__ = ["to_onnx"]

OPSET = 17
IR_VERSION = 8
_ACTIVATION_OPS = {"sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "relu": ("Relu", {}),
                   "leaky_relu": ("LeakyRelu", {"alpha": 0.01}), "softplus": ("softplus", {}),
                   "identity": (None, {})}


def to_onnx(model, path=None):
    """Export a fitted estimator or a network as an ONNX model.

    Parameters
    ----------
    model : MLPClassifier, MLPRegressor, Network, or str / path of a layerprop model file
        A network's ``info`` may hold ``"input_scaling"`` ({"mean", "scale"}), ``"target_scaling"``
        ({"mean", "scale"}), ``"classes"`` and ``"task"`` ("classification" or "regression").
    path : str or path-like, optional
        Where to write the model (atomically); it is returned in any case.

    Returns
    -------
    onnx.ModelProto
        Input ``X`` (n, k_0) in the network's float dtype. Classifiers output ``label`` (n,)
        (n, k_T for multilabel) and ``probabilities``; regressors output ``variable`` (n, k_T).

    Examples
    --------
    >>> import numpy as np, layerprop as lp
    >>> net = lp.Network(lp.LayeredGraph.dense([3, 4, 2]), activation="tanh", output_activation="identity", seed=0)
    >>> onx = lp.to_onnx(net)
    >>> [o.name for o in onx.graph.output]
    ['variable']
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    spec = _spec(model)
    net = spec["net"]
    dtype = np.dtype(to_numpy(net.W[0]).dtype)
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    nodes, inits = [], []

    def const(name, value, dt=dtype):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dt), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=f"{op}_{len(nodes)}", **attrs))
        return output

    h = "X"
    scaling = net.info.get("input_scaling")
    if scaling:
        h = node("Sub", [h, const("input_mean", scaling["mean"])], "X_centered")
        h = node("Div", [h, const("input_scale", scaling["scale"])], "X_scaled")
    for t in range(net.T):
        h = node("MatMul", [h, const(f"W{t}_T", to_numpy(net.W[t]).T)], f"a{t + 1}_no_bias")
        if net.b[t] is not None:
            h = node("Add", [h, const(f"b{t}", to_numpy(net.b[t]))], f"a{t + 1}")
        name = net.act[t + 1].name
        if name not in _ACTIVATION_OPS:
            raise ValueError(f"activation {name!r} of layer {t + 1} has no ONNX operator; "
                             f"exportable: {sorted(_ACTIVATION_OPS)}")
        op, attrs = _ACTIVATION_OPS[name]
        if op == "softplus":  # max(a, 0) + log(1 + exp(-|a|)): stable, and in every runtime's double kernels
            tail = node("Exp", [node("Neg", [node("Abs", [h], f"abs{t + 1}")], f"neg{t + 1}")], f"exp{t + 1}")
            tail = node("Log", [node("Add", [tail, const(f"one{t + 1}", 1.0)], f"onep{t + 1}")], f"log{t + 1}")
            h = node("Add", [node("Relu", [h], f"relu{t + 1}"), tail], f"o{t + 1}")
        elif op is not None:
            h = node(op, [h], f"o{t + 1}", **attrs)
    outputs = (_classifier_outputs if spec["task"] == "classification" else _regressor_outputs)(
        spec, h, node, const, helper, elem)
    graph = helper.make_graph(nodes, "layerprop", [helper.make_tensor_value_info("X", elem, [None, net.k[0]])],
                              outputs, inits)
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="layerprop",
                            ir_version=IR_VERSION)
    onnx.checker.check_model(onx)
    if path is not None:
        _atomic_write(Path(path), onx.SerializeToString())
    return onx


def _spec(model):
    """The network, task, classes, output kind and target scaling of what is exported."""
    if isinstance(model, (str, os.PathLike)):
        from .io import load
        model = load(model)
    if isinstance(model, Network):
        net, info = model, model.info
        task = info.get("task") or ("classification" if net.loss_name in ("softmax_cross_entropy",
                                                                          "binary_cross_entropy") else "regression")
        out = {"softmax_cross_entropy": "softmax", "binary_cross_entropy": "logistic",
               "poisson": "exp"}.get(net.loss_name, info.get("out_activation", "identity"))
        classes = info.get("classes")
        multilabel = bool(info.get("multilabel", False))
        if task == "classification" and classes is None:
            classes = list(range(max(net.k[-1], 2)))
        loss = net.loss_name
    else:
        net = getattr(model, "network_", None)
        if net is None:
            raise ValueError(f"to_onnx needs a fitted estimator, a Network or a model file; got {type(model).__name__}"
                             " (is the estimator fitted?)")
        from sklearn.base import is_classifier
        task = "classification" if is_classifier(model) else "regression"
        out = model.out_activation_
        classes = getattr(model, "classes_", None)
        multilabel = task == "classification" and model._label_binarizer.y_type_.startswith("multilabel")
        loss = model._loss_name()
    return {"net": net, "task": task, "out": out, "classes": classes, "multilabel": multilabel, "loss": loss,
            "target_scaling": net.info.get("target_scaling")}


def _classifier_outputs(spec, h, node, const, helper, elem):
    from onnx import TensorProto
    net, classes = spec["net"], np.asarray(spec["classes"])
    if spec["out"] == "softmax":
        probs = node("Softmax", [h], "p_softmax", axis=1)
    elif spec["loss"] in ("squared", "squared_error"):  # the book's squared loss: clip, then normalize rows
        zero, one = const("zero", 0.0), const("one", 1.0)
        p = node("Clip", [h, zero, one], "p_clipped")
        if net.k[-1] > 1 and not spec["multilabel"]:
            total = node("ReduceSum", [p, const("axis1", [1], np.int64)], "p_total", keepdims=1)
            probs = node("Div", [p, total], "p_normalized")
        else:
            probs = p
    else:
        probs = h
    if net.k[-1] == 1:  # binary: [1 - p, p]
        one_minus = node("Sub", [const("one_b", 1.0), probs], "p_negative")
        probs = node("Concat", [one_minus, probs], "p_binary", axis=1)
    probs = node("Identity", [probs], "probabilities")
    if spec["multilabel"]:
        above = node("Greater", [probs, const("half", 0.5)], "above_half")
        label = node("Cast", [above], "label", to=TensorProto.INT64)
        label_type = TensorProto.INT64
    else:
        index = node("ArgMax", [probs], "class_index", axis=1, keepdims=0)
        label_type, values = _label_tensor(classes)
        label = node("Gather", [const("classes", values, values.dtype), index], "label", axis=0)
    n_out = 2 if net.k[-1] == 1 else net.k[-1]
    label_shape = [None, net.k[-1]] if spec["multilabel"] else [None]
    return [helper.make_tensor_value_info(label, label_type, label_shape),
            helper.make_tensor_value_info("probabilities", elem, [None, n_out])]


def _label_tensor(classes):
    from onnx import TensorProto
    if classes.dtype.kind in "iub":
        return TensorProto.INT64, classes.astype(np.int64)
    if classes.dtype.kind == "f":
        return TensorProto.DOUBLE, classes.astype(np.float64)
    return TensorProto.STRING, classes.astype(str).astype(object)


def _regressor_outputs(spec, h, node, const, helper, elem):
    if spec["out"] == "exp":
        h = node("Exp", [h], "mean")
    scaling = spec["target_scaling"]
    if scaling:
        h = node("Mul", [h, const("target_scale", scaling["scale"])], "y_scaled")
        h = node("Add", [h, const("target_mean", scaling["mean"])], "y_unscaled")
    h = node("Identity", [h], "variable")
    return [helper.make_tensor_value_info(h, elem, [None, spec["net"].k[-1]])]


def _atomic_write(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
