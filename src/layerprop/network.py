"""The network: a layered graph with weights W[t], biases b[t], activations sigma_t and a loss."""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np

from . import backprop as bp
from ._xp import array_device, array_namespace, is_array_api_obj, is_numpy_array, to_numpy
from .activations import get_activation
from .graph import LayeredGraph
from .losses import get_loss

DTYPES = ("float32", "float64")
INITS = ("glorot", "he", "book", "zeros")


@dataclass
class Trace:
    """The forward pass: ``a[t]`` and ``o[t]`` for t = 0..T (``a[0]`` is None, ``o[0]`` is x)."""

    a: list
    o: list


@dataclass
class Gradient:
    """Backpropagation's output: the gradient of the mean loss (``W[t]``, ``b[t]``), the book's
    ``delta[t]`` = dl/do_t per layer, ``g[t]`` = delta_t * sigma'(a_t), and the mean ``loss``."""

    W: list
    b: list
    delta: list
    g: list
    loss: float
    trace: Trace = field(repr=False, default=None)


class _Params(list):
    """The list W (or b): assigning ``net.W[t] = array`` checks the shape and the phantom zeros."""

    def __init__(self, net, name, items):
        super().__init__(items)
        self._net, self._name = net, name

    def __setitem__(self, t, value):
        super().__setitem__(t, self._net._checked_param(self._name, t, value))


class Network:
    """A layered feedforward network (SSBD 20.6): graph (V, E), weights, activations and loss.

    Parameters
    ----------
    graph : LayeredGraph
        The layers and the edge set E (a missing edge is a phantom edge of weight 0).
    activation : str, (sigma, sigma_prime) pair, or list of them
        The hidden layers' activation; a list gives one per hidden layer V_1..V_{T-1}.
    output_activation : str or pair, optional
        The output layer's activation. Default: what the loss requires (identity for
        softmax_cross_entropy, sigmoid for binary_cross_entropy), else the hidden activation
        (the book applies sigma at every layer).
    loss : {"squared", "softmax_cross_entropy", "binary_cross_entropy"}
    seed : int, numpy Generator or None
        Drives the initialization only.
    dtype : {"float64", "float32"}
    init : {"glorot", "he", "book", "zeros"}
        "book" draws uniformly from [-0.05, 0.05] ("at random, close enough to 0").

    Examples
    --------
    >>> import layerprop as lp
    >>> net = lp.Network(lp.LayeredGraph.dense([2, 3, 1]), activation="sigmoid", seed=0)
    >>> net.W[0].shape, net.b[0].shape
    ((3, 2), (3,))
    """

    def __init__(self, graph, activation="sigmoid", output_activation=None, loss="squared",
                 seed=None, dtype="float64", init="glorot"):
        if not isinstance(graph, LayeredGraph):
            raise TypeError(f"graph must be a LayeredGraph; got {type(graph).__name__}")
        self.graph = graph
        self.loss = get_loss(loss)
        self.act = [None] + self._activations(activation, output_activation)
        dtype = _check_dtype(dtype)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {init!r}")
        self.info = {}
        W, b = _initial_weights(graph, dtype, init, np.random.default_rng(seed), self.act)
        self._set_arrays(W, b, [np.asarray(m) for m in graph.masks],
                         None if graph.bias_masks is None else list(graph.bias_masks))

    # -- structure ----------------------------------------------------------------------------
    def _activations(self, activation, output_activation):
        T = self.graph.T
        hidden = activation if isinstance(activation, list) else [activation] * (T - 1)
        if len(hidden) != T - 1:
            raise ValueError(f"activation is a list of {len(hidden)}, but the network has {T - 1} hidden layers")
        acts = [get_activation(h, f"activation[{t}]") for t, h in enumerate(hidden)]
        if output_activation is None:
            required = self.loss.requires_output
            output_activation = required or (activation if not isinstance(activation, list) else "identity")
        out = get_activation(output_activation, "output_activation")
        if self.loss.requires_output and out.name != self.loss.requires_output:
            raise ValueError(f"loss={self.loss.name!r} needs output_activation={self.loss.requires_output!r}; "
                             f"got {out.name!r}")
        return acts + [out]

    @property
    def T(self):
        """The depth T."""
        return self.graph.T

    @property
    def k(self):
        """Layer sizes k_0..k_T."""
        return self.graph.sizes

    @property
    def sigma(self):
        """sigma_t for t = 0..T (index 0 is None)."""
        return [None] + [f.sigma for f in self.act[1:]]

    @property
    def sigma_prime(self):
        """sigma'_t for t = 0..T (index 0 is None)."""
        return [None] + [f.sigma_prime for f in self.act[1:]]

    @property
    def activation_names(self):
        """Names of the activations of layers 1..T (the last is the output's)."""
        return tuple(f.name for f in self.act[1:])

    @property
    def loss_name(self):
        """The loss's registry name (``losses.LOSSES``)."""
        return self.loss.name

    @property
    def dtype(self):
        """The weights' dtype (a NumPy dtype for NumPy weights, else the namespace's)."""
        return self.W[0].dtype

    @property
    def trainable(self):
        """False when some layer uses the sign activation (forward use only)."""
        return all(f.trainable for f in self.act[1:])

    # -- arrays -------------------------------------------------------------------------------
    def _set_arrays(self, W, b, masks, bias_masks):
        self.masks, self.bias_masks = masks, bias_masks
        self.W = _Params(self, "W", W)
        self.b = _Params(self, "b", b)

    def _checked_param(self, name, t, value):
        ref = (self.W if name == "W" else self.b)[t]
        if ref is None:
            raise ValueError(f"{name}[{t}]: this network has no bias (the graph was built with bias=False)")
        xp = array_namespace(ref)
        value = xp.asarray(value, dtype=ref.dtype, device=array_device(ref))
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(f"{name}[{t}] must have shape {tuple(ref.shape)}; got {tuple(value.shape)}")
        if not bool(xp.all(xp.isfinite(value))):
            raise ValueError(f"{name}[{t}] contains NaN or inf")
        mask = (self.masks if name == "W" else self.bias_masks)[t]
        if bool(xp.any(xp.logical_and(xp.logical_not(mask), value != 0))):
            raise ValueError(f"{name}[{t}] is non-zero on phantom edges (edges not in E); "
                             f"multiply it by net.masks[{t}] first")
        return value

    def replace_params(self, W, b):
        """Put new weight lists in place without checks (for training loops: trust inside)."""
        list.__init__(self.W, W)
        list.__init__(self.b, b)

    def to(self, namespace, device=None):
        """A copy of this network whose arrays live in ``namespace`` (e.g. ``torch``, ``array_api_strict``)."""
        if isinstance(namespace, str):
            import importlib
            namespace = importlib.import_module(namespace)
        def conv(x):
            return None if x is None else namespace.asarray(to_numpy(x).copy(), device=device)
        new = self.copy()
        new._set_arrays([conv(w) for w in self.W], [conv(v) for v in self.b],
                        [conv(m) for m in self.masks],
                        None if self.bias_masks is None else [conv(m) for m in self.bias_masks])
        return new

    def copy(self):
        """A deep copy (weights copied; the graph and activations shared, being immutable)."""
        new = object.__new__(Network)
        new.__dict__.update(self.__dict__)
        new.info = dict(self.info)
        xp = array_namespace(self.W[0])
        cp = lambda x: None if x is None else xp.asarray(x, copy=True)
        new._set_arrays([cp(w) for w in self.W], [cp(v) for v in self.b], self.masks, self.bias_masks)
        return new

    def astype(self, dtype):
        """A copy with weights of another dtype ("float32" or "float64")."""
        new = self.copy()
        xp = array_namespace(self.W[0])
        dt = getattr(xp, np.dtype(dtype).name)
        new._set_arrays([xp.astype(w, dt) for w in self.W],
                        [None if v is None else xp.astype(v, dt) for v in self.b], self.masks, self.bias_masks)
        return new

    # -- the algorithm ------------------------------------------------------------------------
    def forward(self, X) -> Trace:
        """The forward pass on one example (1-D, length k_0) or a batch (rows): a_t and o_t for every t."""
        X, single = self._check_X(X)
        a, o = bp.forward(self.W, self.b, self.sigma, X)
        if single:
            a = [None] + [v[0] for v in a[1:]]
            o = [v[0] for v in o]
        return Trace(a, o)

    def predict(self, X):
        """o_T, the network's output, for one example or a batch."""
        return self.forward(X).o[-1]

    def backprop(self, X, Y, sample_weight=None, per_example=False) -> Gradient:
        """Backpropagation (SSBD 20.6): the gradient of the (weighted) mean loss over the rows of X.

        With ``per_example=True``, ``W[t]`` and ``b[t]`` hold one gradient per row (leading axis n).
        """
        if not self.trainable:
            raise ValueError("this network uses the 'sign' activation, which is for forward use only; "
                             "it cannot be trained or differentiated")
        if per_example and sample_weight is not None:
            raise ValueError("per_example=True gives one unweighted gradient per row; "
                             "sample_weight does not apply to it (weight the rows yourself)")
        X, single = self._check_X(X, min_rows=1)
        Y = self._check_Y(Y, X.shape[0], single)
        r = None if sample_weight is None else self._check_weights(sample_weight, X.shape[0])
        grad = gradient(self, X, Y, r, per_example=per_example)
        if single:
            grad.delta = [None] + [d[0] for d in grad.delta[1:]]
            grad.g = [None] + [d[0] for d in grad.g[1:]]
            if per_example:
                grad.W = [w[0] for w in grad.W]
                grad.b = [None if v is None else v[0] for v in grad.b]
        return grad

    def loss_value(self, X, Y, sample_weight=None):
        """The (weighted) mean loss over the rows of X."""
        X, single = self._check_X(X, min_rows=1)
        Y = self._check_Y(Y, X.shape[0], single)
        r = None if sample_weight is None else self._check_weights(sample_weight, X.shape[0])
        a, o = bp.forward(self.W, self.b, self.sigma, X)
        rows = bp.loss_rows(self.loss, a[-1], o[-1], Y)
        xp = array_namespace(rows)
        return float(xp.mean(rows) if r is None else xp.sum(rows * r) / xp.sum(r))

    # -- boundary checks ----------------------------------------------------------------------
    def _check_X(self, X, min_rows=0):
        xp = array_namespace(self.W[0])
        X = _as_float_array(X, xp, self.W[0], "X")
        single = X.ndim == 1
        if single:
            X = xp.reshape(X, (1, -1))
        if X.ndim != 2 or X.shape[1] != self.k[0]:
            want = f"({self.k[0]},) or (n, {self.k[0]})"
            raise ValueError(f"X must have shape {want} (k_0 = {self.k[0]} inputs); got {tuple(X.shape)}")
        if X.shape[0] < min_rows:  # a mean over no rows would be 0/0
            raise ValueError(f"X has no rows; need at least {min_rows} example")
        if not bool(xp.all(xp.isfinite(X))):
            raise ValueError("X contains NaN or inf")
        return X, single

    def _check_Y(self, Y, n, single):
        xp = array_namespace(self.W[0])
        Y = _as_float_array(Y, xp, self.W[0], "Y")
        if single and Y.ndim == 1:
            Y = xp.reshape(Y, (1, -1))
        if Y.ndim == 1 and self.k[-1] == 1 and Y.shape[0] == n:
            Y = xp.reshape(Y, (n, 1))
        if Y.ndim != 2 or tuple(Y.shape) != (n, self.k[-1]):
            raise ValueError(f"Y must have shape ({n}, {self.k[-1]}) (k_T = {self.k[-1]} outputs); got {tuple(Y.shape)}")
        if not bool(xp.all(xp.isfinite(Y))):
            raise ValueError("Y contains NaN or inf")
        return Y

    def _check_weights(self, r, n):
        xp = array_namespace(self.W[0])
        r = _as_float_array(r, xp, self.W[0], "sample_weight")
        if r.ndim != 1 or r.shape[0] != n:
            raise ValueError(f"sample_weight must have shape ({n},); got {tuple(r.shape)}")
        if not bool(xp.all(xp.isfinite(r))) or bool(xp.any(r < 0)) or not bool(xp.sum(r) > 0):
            raise ValueError("sample_weight must be finite, >= 0 and not all 0")
        return r

    def __repr__(self):
        acts = ",".join(self.activation_names)
        return f"Network({'-'.join(map(str, self.k))}, |E|={self.graph.num_edges()}, activations=[{acts}], loss={self.loss.name!r}, dtype={self.dtype})"

    def _repr_svg_(self):
        from .diagram import network_svg  # optional: the diagram module draws the graph
        return network_svg(self)


def backward_pass(net, X, Y):
    """Backpropagation's two passes on a batch (SSBD 20.6): a_t, o_t forward; delta_t, g_t backward;
    and the loss on each row."""
    a, o = bp.forward(net.W, net.b, net.sigma, X)
    delta_T, g_T = bp.output_g(net.loss, net.act[-1].sigma_prime, a[-1], o[-1], Y)
    delta, g = bp.backward(net.W, net.sigma_prime, a, delta_T, g_T)
    return a, o, delta, g, bp.loss_rows(net.loss, a[-1], o[-1], Y)


def loss_and_weight_sums(rows, r):
    """The loss summed over the rows (weighted by r) and the weights' sum (the row count without r)."""
    xp = array_namespace(rows)
    if r is None:
        return float(xp.sum(rows)), float(rows.shape[0])
    return float(xp.sum(rows * r)), float(xp.sum(r))


def gradient(net, X, Y, r=None, per_example=False) -> Gradient:
    """Backpropagation on a batch: forward, delta_T, backward, gradient; W/b are means over rows."""
    a, o, delta, g, rows = backward_pass(net, X, Y)
    if per_example:
        gW, gb = bp.per_example_gradient(g, o, net.masks, net.bias_masks)
        return Gradient(gW, gb, delta, g, float(array_namespace(rows).mean(rows)), Trace(a, o))
    gW, gb = bp.weight_gradient(g, o, net.masks, net.bias_masks, r)
    loss_sum, total = loss_and_weight_sums(rows, r)
    return Gradient([w / total for w in gW], [None if v is None else v / total for v in gb],
                    delta, g, loss_sum / total, Trace(a, o))


def _check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}; got {dtype!r}")
    return dt


def _as_float_array(X, xp, like, name):
    """X as a floating array of the network's dtype and namespace; refuses strings, objects, complex.

    NumPy arrays and nested lists are accepted by a network of any namespace (and moved there);
    an array of another namespace (torch into a CuPy network, say) is refused, not moved.
    """
    if not is_array_api_obj(X) or is_numpy_array(X):
        try:
            arr = np.asarray(X)
        except ValueError as e:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array (rows of equal length): {e}") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
        if is_numpy_array(like):
            return arr.astype(like.dtype, copy=False)
        return xp.asarray(arr.astype(str(like.dtype).rsplit(".", 1)[-1]), device=array_device(like))
    if array_namespace(X) is not xp:
        raise TypeError(f"{name} is a {type(X).__module__} array but the network's weights are "
                        f"{type(like).__module__} arrays; convert one of them (net.to(...))")
    if not xp.isdtype(X.dtype, ("real floating", "integral", "bool")):
        raise TypeError(f"{name} must be a real numeric array; got dtype {X.dtype}")
    return xp.astype(X, like.dtype)


def _initial_weights(graph, dtype, init, rng, act):
    """w^(1): random, close to 0 (SSBD 20.6), drawn from ``rng``; phantom entries 0."""
    W, b = [], []
    for t, m in enumerate(graph.masks):
        fan_out, fan_in = m.shape
        if init == "zeros":
            w, v = np.zeros(m.shape), np.zeros(fan_out)
        elif init == "he":
            w, v = rng.normal(0.0, np.sqrt(2.0 / fan_in), m.shape), np.zeros(fan_out)
        else:
            # glorot: scikit-learn's rule (factor 2 for the sigmoid, 6 otherwise)
            bound = 0.05 if init == "book" else np.sqrt((2.0 if act[t + 1].name == "sigmoid" else 6.0) / (fan_in + fan_out))
            w, v = rng.uniform(-bound, bound, m.shape), rng.uniform(-bound, bound, fan_out)
        W.append(np.where(m, w, 0.0).astype(dtype))
        b.append(None if graph.bias_masks is None else np.where(graph.bias_masks[t], v, 0.0).astype(dtype))
    return W, b
