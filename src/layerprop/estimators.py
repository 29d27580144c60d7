"""scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor``, a drop-in for scikit-learn's.

They take scikit-learn's parameters with scikit-learn's meanings and defaults, and add the book's
(SSBD 20.6) options: ``l2`` (lambda in w <- w - eta (v + lam w)), per-layer activations, the output
activation and loss, sparse connectivity (phantom edges stay exactly 0), an explicit validation
set, ``class_weight``, ``device`` and ``dtype``. Inside, each estimator holds a
:class:`~layerprop.Network` (``network_``, in the book's orientation) and trains it with the
engines (``engines.select_engine``), the update rules (``optim.get_optimizer``) and
``sgd.combine``, the one place where a step's sums become means.

This is the only module that imports scikit-learn's estimator API.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from scipy.special import softmax as _softmax
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d, gen_batches, shuffle
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import engines
from ._xp import array_device, array_namespace, is_array_api_obj, is_numpy_array, to_numpy
from .activations import ACTIVATIONS, ALIASES
from .graph import LayeredGraph
from .network import Network
from .optim import get_optimizer
from .sgd import combine

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ("sgd", "adam")
_HIDDEN_ACTIVATIONS = sorted((set(ACTIVATIONS) | set(ALIASES)) - {"sign"})
_OUTPUT_ACTIVATIONS = sorted(set(_HIDDEN_ACTIVATIONS) | {"softmax", "exp"})
_PREDICT_CHUNK = 4096  # rows per forward pass when predicting (and per gradient chunk for lbfgs)
_NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large "
               "values and need to be preprocessed.")


def _combine(loss_sum, weight_sum, gW, gb, reduce=None):
    """A step's sums -> (mean loss, total weight, v_W, v_b) through ``sgd.combine``, the one place
    where a distributed run all-reduces; the total weight (after the reduction) scales alpha."""
    total = [weight_sum]

    def reduce_and_record(loss_sum, weight_sum, gW, gb):
        if reduce is not None:
            loss_sum, weight_sum, gW, gb = reduce(loss_sum, weight_sum, gW, gb)
        total[0] = weight_sum
        return loss_sum, weight_sum, gW, gb

    loss, gW, gb = combine(loss_sum, weight_sum, gW, gb, reduce=reduce_and_record)
    return loss, total[0], gW, gb


def _group(est, *arrays):
    """The process group of a distributed fit (layerprop.distributed), or None; with ``arrays``,
    after checking that every rank fits the same estimator on the same data."""
    if not est.distributed:
        return None
    if est.solver not in _STOCHASTIC_SOLVERS:
        raise ValueError(f"distributed=True needs solver='sgd' or 'adam'; got solver={est.solver!r}")
    from .distributed import group
    from .sgd import _data_hash
    g = group(cuda=est.device == "cuda" or getattr(est, "_placement", ("numpy", None))[0] == "cuda")
    if arrays:
        parts = [p for a in arrays for p in ((a.data, a.indices, a.indptr) if sp.issparse(a) else (a,))]
        g.check_same({"params": repr(sorted(est.get_params().items())), "data": _data_hash(*parts)},
                     who=f"{type(est).__name__}.fit")
    return g


# -- the Array API: inputs in other namespaces (torch, CuPy, array-api-strict) -------------------
def _array_space(X):
    """(namespace, device) of ``X`` when it is an array-API array other than NumPy's (torch, CuPy,
    array-api-strict, ...); None for NumPy arrays, lists, DataFrames, scipy.sparse and dask arrays,
    which scikit-learn's validation turns into NumPy as before."""
    if X is None or isinstance(X, np.ndarray) or sp.issparse(X) or not is_array_api_obj(X):
        return None
    from array_api_compat import is_dask_array
    if is_dask_array(X):
        return None
    return array_namespace(X), array_device(X)


def _host(X):
    """``X`` as NumPy when it is an array in another namespace (copied from the GPU); else as is."""
    return to_numpy(X) if _array_space(X) is not None else X


def _to_space(a, space):
    """A NumPy result in the input's namespace and device (``space`` from :func:`_array_space`).
    Results that are not numbers (string or object class labels) stay NumPy: torch and CuPy hold
    no strings."""
    if space is None or not isinstance(a, np.ndarray) or a.dtype.kind not in "biuf":
        return a
    xp, device = space
    return xp.asarray(np.ascontiguousarray(a), device=device)


def _gpu_index(space):
    """The CUDA device index of an input on a GPU (torch CUDA tensor, CuPy array); None on a CPU."""
    if space is None:
        return None
    xp, device = space
    name = getattr(xp, "__name__", "")
    if "torch" in name:
        return (device.index if device.index is not None else _current_cuda()) if device.type == "cuda" else None
    if "cupy" in name:
        return int(device.id)
    return None


def _current_cuda():
    import torch
    return torch.cuda.current_device()


def _is_torch_space(space):
    return space is not None and "torch" in getattr(space[0], "__name__", "")


def _dense(X):
    """Rows of X as a dense array (scipy.sparse minibatches are densified one batch at a time)."""
    return X.toarray() if sp.issparse(X) else X


class _BaseMLP(BaseEstimator):
    """Shared parameters, the epoch loop (sgd, adam) and L-BFGS over the real edges."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_HIDDEN_ACTIVATIONS)), list],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "output_activation": [None, StrOptions(set(_OUTPUT_ACTIVATIONS))],
        "l2": [Interval(Real, 0, None, closed="left")],
        "regularize_bias": ["boolean"],
        "connectivity": [None, list, Interval(Real, 0, 1, closed="right")],
        "validation_data": [None, tuple],
        "device": [None, StrOptions({"cpu", "cuda"})],
        "tf32": ["boolean"],
        "dtype": [None, StrOptions({"float32", "float64"})],
        "engine": [str],
        "distributed": ["boolean"],
    }

    # -- fitting ------------------------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        first_pass = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        space = _array_space(X)
        placement = self._where_to_train(space)  # a clear ValueError when device= and X's device conflict
        if first_pass:
            self._placement = placement
        else:
            self._check_namespace(X, "partial_fit" if incremental else "fit")
        X, y, sample_weight = _host(X), _host(y), _host(sample_weight)
        X, y_labels, Y = self._validate_input(X, y, incremental, reset=first_pass)
        sample_weight = self._sample_weight(sample_weight, X, y_labels, incremental)
        dtype = np.dtype(self.dtype or X.dtype)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1)
        self._check_targets(Y)
        X, Y = X.astype(dtype, copy=False), Y.astype(dtype, copy=False)
        self._random_state = check_random_state(self.random_state)
        if self.distributed:  # every rank draws what rank 0 draws (layerprop.distributed)
            self._random_state = _group(self, X, Y, sample_weight).same_random_state(self._random_state)
        if first_pass:
            xp, device = space if space is not None else (np, None)
            self._fit_input_like = xp.zeros((0,), dtype=getattr(xp, dtype.name), device=device)
            self._initialize(X.shape[1], hidden, Y.shape[1], dtype)
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs but the model was fitted with {self.n_outputs_}")
        before = self.network_.copy()
        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, Y, y_labels, sample_weight, incremental)
        else:
            self._fit_lbfgs(X, Y, sample_weight)
        if not all(bool(np.all(np.isfinite(to_numpy(w)))) for w in self._params()):
            self.network_ = before  # a fitted model never holds non-finite weights
            self._optimizer = None
            raise ValueError(_NON_FINITE)
        return self

    def _sample_weight(self, sample_weight, X, y_labels, incremental):
        """sample_weight checked as scikit-learn does, times the class weights (classifier)."""
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        class_weight = getattr(self, "class_weight", None)
        if class_weight is None:
            return sample_weight
        if incremental and isinstance(class_weight, str):
            raise ValueError(f"class_weight '{class_weight}' is not supported for partial_fit. In order to "
                             "use 'balanced' weights, use compute_class_weight('balanced', classes=classes, "
                             "y=y) and pass the dict as class_weight.")
        if y_labels.ndim == 2:  # multilabel: one dict (or 'balanced') per output, as scikit-learn
            cw = compute_sample_weight(class_weight, y_labels)
        else:
            weights = compute_class_weight(class_weight, classes=self.classes_, y=y_labels)
            cw = weights[np.searchsorted(self.classes_, y_labels)]
        return cw if sample_weight is None else sample_weight * cw

    def _check_targets(self, Y):
        """y must lie in the range of the output activation (the book's checks at the boundary)."""
        out = self.output_activation
        if self._loss_name() == "poisson" and np.any(Y < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
        if out in ("sigmoid", "logistic") and (np.any(Y < 0) or np.any(Y > 1)):
            raise ValueError(f"output_activation={out!r} outputs values in (0, 1); y has values outside [0, 1]")
        if out == "tanh" and np.any(np.abs(Y) > 1):
            raise ValueError("output_activation='tanh' outputs values in (-1, 1); y has values outside [-1, 1]")

    def _initialize(self, n_features, hidden, n_outputs, dtype):
        """The network w^(1) (scikit-learn's Glorot draws, in its order) and the fitted attributes."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_outputs
        sizes = [n_features] + hidden + [n_outputs]
        self.n_layers_ = len(sizes)
        net_loss, net_out, self.out_activation_ = self._output_spec()
        graph = self._graph(sizes)
        net = Network(graph, activation=self._hidden_activations(len(hidden)), output_activation=net_out,
                      loss=net_loss, dtype=dtype.name, init="zeros")
        W, b = [], []
        for t in range(len(sizes) - 1):
            coef, intercept = self._init_coef(sizes[t], sizes[t + 1], t, dtype)
            W.append(np.where(graph.masks[t], coef.T, 0).astype(dtype))
            b.append(np.where(graph.bias_masks[t], intercept, 0).astype(dtype))
        net.replace_params(W, b)
        net.info.update(self._network_info())
        self.network_ = self._to_device(net)
        self._optimizer = None
        self._stopped = False
        self._best = self._snapshot()
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping or self.validation_data is not None:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None if self.early_stopping else np.inf
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _hidden_activations(self, n_hidden):
        act = self.activation
        if isinstance(act, list):
            if len(act) != n_hidden:
                raise ValueError(f"activation is a list of {len(act)} names, but hidden_layer_sizes gives "
                                 f"{n_hidden} hidden layers")
            bad = [a for a in act if a not in _HIDDEN_ACTIVATIONS]
            if bad:
                raise ValueError(f"activation={act!r}: {bad[0]!r} is not one of {_HIDDEN_ACTIVATIONS}")
            return list(act)
        return act if n_hidden else "identity"

    def _init_coef(self, fan_in, fan_out, t, dtype):
        """scikit-learn's draw: uniform in +-sqrt(factor / (fan_in + fan_out)), factor 2 for logistic."""
        act = self.activation
        name = act[min(t, len(act) - 1)] if isinstance(act, list) else act
        factor = 2.0 if ALIASES.get(name, name) == "sigmoid" else 6.0
        bound = np.sqrt(factor / (fan_in + fan_out))
        coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
        intercept = self._random_state.uniform(-bound, bound, fan_out)
        return coef.astype(dtype, copy=False), intercept.astype(dtype, copy=False)

    def _graph(self, sizes):
        """The layered graph: dense, LayeredGraph.random(density) seeded from random_state, or masks."""
        c = self.connectivity
        if c is None:
            return LayeredGraph.dense(sizes)
        if isinstance(c, list):
            graph = LayeredGraph.from_masks(c)
            if list(graph.sizes) != list(sizes):
                raise ValueError(f"connectivity masks give layer sizes {list(graph.sizes)}, but the data and "
                                 f"hidden_layer_sizes give {list(sizes)}")
            return graph
        return LayeredGraph.random(sizes, float(c), seed=int(self._random_state.randint(np.iinfo(np.int32).max)))

    def _where_to_train(self, space):
        """Where the network trains, from ``device`` and the input's namespace and device:
        ("numpy", None), ("torch", "cpu") for torch CPU tensors, or ("cuda", "cuda[:N]").

        device=None follows the input: a torch CUDA tensor or a CuPy array trains on its own GPU,
        a torch CPU tensor in torch on the CPU, anything else in NumPy. device='cuda' trains on a
        GPU (an input already on one keeps its GPU). device='cpu' with an input on a GPU is a
        conflict: ValueError rather than a silent copy off the GPU.
        """
        gpu = _gpu_index(space)
        if self.device == "cpu" and gpu is not None:
            raise ValueError(f"device='cpu' but X is on the GPU cuda:{gpu}; use device=None (follow the input) "
                             "or device='cuda' to train there, or move X to the CPU first")
        if gpu is not None:
            return "cuda", f"cuda:{gpu}"
        if self.device == "cuda":
            return "cuda", "cuda"
        if _is_torch_space(space) and space[1].type == "cpu":
            return "torch", "cpu"
        return "numpy", None

    def _to_device(self, net):
        """The network where it trains (see :meth:`_where_to_train`; ``layerprop.device.to_device``,
        where tf32 is checked too)."""
        from .device import to_device
        kind, device = getattr(self, "_placement", ("numpy", None))
        if kind == "torch":
            if self.tf32:
                raise ValueError("tf32=True needs device='cuda' (TF32 is a GPU matrix-product mode)")
            import torch
            return net.to(torch, device=device)
        return to_device(net, device if kind == "cuda" else (self.device or "cpu"), tf32=self.tf32)

    def _check_namespace(self, X, method):
        """With ``sklearn.set_config(array_api_dispatch=True)``: X must be in the namespace and on
        the device of fit's X (scikit-learn's ``check_same_namespace``). Without it, any input is
        converted where the network is."""
        if not get_config()["array_api_dispatch"] or not hasattr(self, "_fit_input_like"):
            return
        from sklearn.utils._array_api import check_same_namespace
        check_same_namespace(X, self, attribute="_fit_input_like", method=method)

    def _output_space(self, X, method):
        """The namespace and device the outputs of ``method`` go to: X's (None: NumPy)."""
        self._check_namespace(X, method)
        return _array_space(X)

    def _to_net(self, A):
        """A dense NumPy block in the network's namespace, dtype and device."""
        w = self.network_.W[0]
        if is_numpy_array(w):
            return np.asarray(A, dtype=w.dtype)
        xp = array_namespace(w)
        return xp.asarray(np.asarray(A, dtype=to_numpy(w[:1, :1]).dtype), device=array_device(w))

    def _network_info(self):
        return {"task": "classification" if is_classifier(self) else "regression",
                "estimator": type(self).__name__, "out_activation": self.out_activation_}

    # -- one step's gradient ------------------------------------------------------------------
    def _gradient(self, engine, blocks, reduce=None):
        """Mean gradient over the rows of ``blocks`` [(X, Y, r), ...] and scikit-learn's loss value.

        Sums come from the engine, means from ``sgd.combine``. scikit-learn's ``alpha`` adds
        alpha * W / (weight sum) to the coefficients' gradient (intercepts not penalized); the
        book's ``l2`` is applied by the update rule (or below, for L-BFGS).
        """
        net = self.network_
        loss_sum = weight_sum = 0.0
        gW = gb = None
        for Xb, Yb, rb in blocks:
            ls, ws, w_, b_ = engine.gradient_sums(net, Xb, Yb, rb)
            loss_sum, weight_sum = loss_sum + ls, weight_sum + ws
            if gW is None:  # copy: an engine may reuse its buffers
                gW, gb = [g + 0 for g in w_], [None if v is None else v + 0 for v in b_]
            else:
                gW = [g + h for g, h in zip(gW, w_)]
                gb = [None if g is None else g + h for g, h in zip(gb, b_)]
        loss, weight_sum, gW, gb = _combine(loss_sum, weight_sum, gW, gb, reduce)
        if not self.alpha or weight_sum == 0:
            return float(loss), 0.0, gW, gb
        gW = [g + (self.alpha / weight_sum) * w for g, w in zip(gW, net.W)]
        penalty = 0.5 * self.alpha * self._sum_squares(net.W) / weight_sum
        return float(loss), penalty, gW, gb

    @staticmethod
    def _sum_squares(arrays):
        return sum(float(to_numpy(array_namespace(w).sum(w * w))) for w in arrays if w is not None)

    def _l2_penalty(self):
        """lam/2 ||w||^2 (the book's regularizer; biases included when regularize_bias)."""
        if not self.l2:
            return 0.0
        net = self.network_
        return 0.5 * self.l2 * (self._sum_squares(net.W) + (self._sum_squares(net.b) if self.regularize_bias else 0))

    def _loss_scale(self):
        """scikit-learn reports its squared error averaged over the outputs (its gradient is not)."""
        return self.n_outputs_ if self._loss_name() == "squared_error" else 1

    # -- sgd and adam: the epoch loop -----------------------------------------------------------
    def _optimizer_name(self):
        if self.solver == "adam":
            return "adam"
        if self.momentum == 0:
            return "sgd"
        return "nesterov" if self.nesterovs_momentum else "momentum"

    def _make_optimizer(self):
        self._optimizer = get_optimizer(
            self._optimizer_name(), self.network_, lam=self.l2, regularize_bias=self.regularize_bias,
            momentum=self.momentum, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        self._learning_rate = float(self.learning_rate_init)

    def _fit_stochastic(self, X, Y, y_labels, sample_weight, incremental):
        if not incremental or self._optimizer is None:
            self._make_optimizer()
        if incremental and self._stopped:
            return
        split = self._validation_split(X, Y, y_labels, sample_weight)
        X_train, Y_train, sw_train, X_val, y_val, sw_val = split
        n_samples = X_train.shape[0]
        batch_size = self._batch_size(n_samples)
        engine = engines.select_engine(self.network_, batch_size=batch_size, optimizer=self._optimizer_name(),
                                       engine=self.engine)
        dense = None if sp.issparse(X_train) else self._to_net(X_train)
        Y_net = self._to_net(Y_train)
        r_net = None if sw_train is None else self._to_net(sw_train)
        sample_idx = np.arange(n_samples)
        dist = _group(self)
        trainer = self._trainer(engine, dense, Y_net, r_net, batch_size, dist)
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            if self.shuffle:
                sample_idx = shuffle(sample_idx, random_state=self._random_state)
            accumulated = 0.0
            if trainer is not None:  # the epoch's steps through the engine's trainer (CUDA graphs on a GPU)
                accumulated = self._epoch_on_trainer(trainer, sample_idx, n_samples, batch_size)
            for batch in (() if trainer is not None else gen_batches(n_samples, batch_size)):
                rows = sample_idx[batch] if self.shuffle else batch
                if dist is not None:
                    rows = dist.share(sample_idx[batch])  # this rank's part of the batch
                Xb = dense[rows] if dense is not None else self._to_net(X_train[rows].toarray())
                rb = None if r_net is None else r_net[rows]
                loss, penalty, gW, gb = self._gradient(engine, [(Xb, Y_net[rows], rb)], dist and dist.reduce)
                self._optimizer.step(self.network_, gW, gb, self._eta())
                accumulated += (loss / self._loss_scale() + penalty) * (batch.stop - batch.start)
            self.n_iter_ += 1
            self.loss_ = accumulated / n_samples + self._l2_penalty()
            self.t_ += n_samples
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
            if not math.isfinite(self.loss_):
                break  # the weights diverged: _fit raises scikit-learn's non-finite error
            if self._end_of_epoch(X_val, y_val, sw_val):
                if self.early_stopping and incremental:
                    self._stopped = True
                break
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
                              "hasn't converged yet." % self.max_iter, ConvergenceWarning)
        if self.early_stopping and (not incremental or self._stopped):
            self.network_.replace_params(*self._best)  # the best iterate on the validation set

    def _trainer(self, engine, dense, Y_net, r_net, batch_size, dist):
        """The engine's whole-step trainer (engine "cuda_graph": device='cuda', CUDA graphs) when it can
        run this fit: dense data, one process; else None (the step-by-step loop)."""
        from .engines.cuda_graph import OPTIMIZERS
        if not hasattr(engine, "trainer") or dense is None or dist is not None \
                or self._optimizer.name not in OPTIMIZERS:
            return None
        return engine.trainer(self.network_, dense, Y_net, batch_size, self._optimizer, steps_per_graph=16,
                              sample_weight=r_net, alpha=float(self.alpha))

    def _epoch_on_trainer(self, trainer, sample_idx, n_samples, batch_size):
        """One epoch of the trainer's steps; the weights and optimizer state are written back
        (``sync``). Returns the epoch's summed loss as the step-by-step loop accumulates it."""
        batches = list(gen_batches(n_samples, batch_size))
        losses, wsums, pens = trainer.run([sample_idx[b] for b in batches], [self._eta()] * len(batches),
                                          per_step=True)
        trainer.sync()
        means = np.divide(losses, wsums, out=np.zeros_like(losses), where=wsums != 0)
        accumulated = 0.0
        for term in ((means / self._loss_scale() + pens) * [b.stop - b.start for b in batches]).tolist():
            accumulated += term
        return accumulated

    def _eta(self):
        """eta_i: scikit-learn's learning rate (Adam's bias correction happens in the update rule)."""
        return self._learning_rate if self.solver == "sgd" else float(self.learning_rate_init)

    def _end_of_epoch(self, X_val, y_val, sw_val):
        """Bookkeeping after an epoch as scikit-learn's; True when training should stop."""
        self._update_no_improvement_count(X_val, y_val, sw_val)
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._learning_rate = float(self.learning_rate_init) / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        if self.early_stopping:
            msg = ("Validation score did not improve more than tol=%f for %d consecutive epochs."
                   % (self.tol, self.n_iter_no_change))
        else:
            msg = ("Training loss did not improve more than tol=%f for %d consecutive epochs."
                   % (self.tol, self.n_iter_no_change))
        if self.solver == "sgd" and self.learning_rate == "adaptive" and self._learning_rate > 1e-6:
            self._learning_rate /= 5.0
            if self.verbose:
                print(msg + " Setting learning rate to %f" % self._learning_rate)
            self._no_improvement_count = 0
            return False
        if self.verbose:
            print(msg + " Stopping.")
        return True

    def _update_no_improvement_count(self, X_val, y_val, sw_val):
        if X_val is not None:
            score = self._score(X_val, y_val, sample_weight=sw_val)
            if self.distributed:  # rank 0's score: every rank decides the same
                score = _group(self).broadcast_float(score)
            self.validation_scores_.append(score)
            if self.verbose:
                print("Validation score: %f" % score)
            improved = score > self.best_validation_score_
            if self.early_stopping:
                if score < self.best_validation_score_ + self.tol:
                    self._no_improvement_count += 1
                else:
                    self._no_improvement_count = 0
            if improved:
                self.best_validation_score_ = score
                self._best = self._snapshot()
            if self.early_stopping:
                return
        if self.loss_curve_[-1] > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if self.loss_curve_[-1] < self.best_loss_:
            self.best_loss_ = self.loss_curve_[-1]

    def _snapshot(self):
        net = self.network_
        cp = lambda w: None if w is None else array_namespace(w).asarray(w, copy=True)
        return [cp(w) for w in net.W], [cp(v) for v in net.b]

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        return int(np.clip(self.batch_size, 1, n_samples))

    def _validation_split(self, X, Y, y_labels, sample_weight):
        """(X_train, Y_train, sw_train, X_val, y_val, sw_val): validation_data, else the
        validation_fraction split (stratified for single-label classification), else none."""
        if self.validation_data is not None:
            X_val, y_val, sw_val = self._checked_validation_data()
            return X, Y, sample_weight, X_val, y_val, sw_val
        if not self.early_stopping:
            return X, Y, sample_weight, None, None, None
        stratify = y_labels if is_classifier(self) and y_labels.ndim == 1 else None
        arrays = [X, Y, y_labels] + ([] if sample_weight is None else [sample_weight])
        parts = train_test_split(*arrays, random_state=self._random_state, test_size=self.validation_fraction,
                                 stratify=stratify)
        X_train, X_val, Y_train, _, _, y_val = parts[:6]
        sw_train, sw_val = (None, None) if sample_weight is None else parts[6:8]
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                             "your dataset.")
        return X_train, Y_train, sw_train, X_val, y_val, sw_val

    def _checked_validation_data(self):
        data = self.validation_data
        if len(data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val); "
                             f"got a tuple of {len(data)}")
        X_val = validate_data(self, _host(data[0]), accept_sparse=["csr", "csc"], reset=False)
        y_val = np.asarray(_host(data[1]))
        if y_val.ndim == 2 and y_val.shape[1] == 1:
            y_val = column_or_1d(y_val)
        if y_val.shape[0] != X_val.shape[0]:
            raise ValueError(f"validation_data: X_val has {X_val.shape[0]} rows but y_val has {y_val.shape[0]}")
        sw_val = None if len(data) == 2 else _check_sample_weight(_host(data[2]), X_val)
        return X_val, y_val, sw_val

    # -- lbfgs: scipy's L-BFGS-B over the real edges only -------------------------------------
    def _fit_lbfgs(self, X, Y, sample_weight):
        net = self.network_
        where = [to_numpy(m).astype(bool) for m in net.masks] + [to_numpy(m).astype(bool) for m in net.bias_masks]
        engine = engines.select_engine(net, batch_size=X.shape[0], optimizer="lbfgs", engine=self.engine)
        blocks = []
        for start in range(0, X.shape[0], _PREDICT_CHUNK):
            part = slice(start, start + _PREDICT_CHUNK)
            rb = None if sample_weight is None else self._to_net(sample_weight[part])
            blocks.append((self._to_net(_dense(X[part])), self._to_net(Y[part]), rb))
        state = {}

        def loss_grad(x):
            self._unpack(x, where)
            loss, penalty, gW, gb = self._gradient(engine, blocks)
            if self.l2:
                gW = [g + self.l2 * w for g, w in zip(gW, net.W)]
                if self.regularize_bias:
                    gb = [g + self.l2 * v for g, v in zip(gb, net.b)]
            state["loss"] = loss / self._loss_scale() + penalty + self._l2_penalty()
            grads = [to_numpy(g) for g in gW + gb]
            return loss + penalty + self._l2_penalty(), np.concatenate([g[m] for g, m in zip(grads, where)])

        x0 = np.concatenate([to_numpy(p)[m] for p, m in zip(self._params(), where)]).astype(np.float64)
        res = scipy.optimize.minimize(loss_grad, x0, method="L-BFGS-B", jac=True,
                                      options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        self.n_iter_ = _check_optimize_result("lbfgs", res, self.max_iter)
        loss_grad(res.x)
        self.loss_ = state["loss"]

    def _params(self):
        return list(self.network_.W) + [v for v in self.network_.b if v is not None]

    def _unpack(self, x, where):
        """Weights from L-BFGS's vector of real-edge values; phantom entries exactly 0."""
        net, arrays, start = self.network_, [], 0
        dtype = to_numpy(net.W[0][:1, :1]).dtype
        for m in where:
            a = np.zeros(m.shape, dtype=dtype)
            n = int(m.sum())
            a[m] = x[start:start + n]
            start += n
            arrays.append(a)
        T = len(net.W)
        net.replace_params([self._to_net(a) for a in arrays[:T]], [self._to_net(a) for a in arrays[T:]])

    # -- prediction -----------------------------------------------------------------------------
    def _forward_pass_fast(self, X, check_input=True):
        """The output layer's values in scikit-learn's sense (softmax and exp applied)."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        net = self.network_
        out = []
        for start in range(0, X.shape[0], _PREDICT_CHUNK):
            Xc = self._to_net(_dense(X[start:start + _PREDICT_CHUNK]))
            out.append(to_numpy(net.predict(Xc)))
        o = np.concatenate(out) if out else np.zeros((0, self.n_outputs_), dtype=net.dtype)
        if self.out_activation_ == "softmax":
            return _softmax(o, axis=1)
        if self.out_activation_ == "exp":
            return np.exp(o)
        return o

    def _public_score(self, X, y, sample_weight, score_function):
        """``score``: scikit-learn's metric in NumPy (any input namespace), a Python float."""
        check_is_fitted(self)
        self._check_namespace(X, "score")
        y_pred = self._predict(_host(X))
        return float(score_function(_host(y), y_pred, sample_weight=_host(sample_weight)))

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    # -- scikit-learn attributes in its orientation -------------------------------------------
    @property
    def coefs_(self):
        """Weights in scikit-learn's orientation: ``coefs_[t]`` is ``network_.W[t].T`` (a view on CPU)."""
        return [w.T if is_numpy_array(w) else to_numpy(w).T for w in self.network_.W]

    @coefs_.setter
    def coefs_(self, coefs):
        for t, c in enumerate(coefs):
            self.network_.W[t] = np.asarray(c).T

    @property
    def intercepts_(self):
        """Biases: ``intercepts_[t]`` is ``network_.b[t]``."""
        return [v if is_numpy_array(v) else to_numpy(v) for v in self.network_.b]

    @intercepts_.setter
    def intercepts_(self, intercepts):
        for t, v in enumerate(intercepts):
            self.network_.b[t] = np.asarray(v)

    # -- pickling: the update rule's state travels as NumPy arrays -------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        opt = state.get("_optimizer")
        if opt is not None:
            state["_optimizer"] = ("optimizer-state", opt.state_dict())
        return state

    def __setstate__(self, state):
        opt = state.get("_optimizer")
        super().__setstate__(state)
        if isinstance(opt, tuple):
            self._make_optimizer_keep_rate()
            self._optimizer.load_state_dict(opt[1])

    def _make_optimizer_keep_rate(self):
        rate = self.__dict__.get("_learning_rate")
        self._make_optimizer()
        if rate is not None:
            self._learning_rate = rate

    def _loss_name(self):
        return self.loss

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags


_COMMON_DOC = """
    hidden_layer_sizes : array-like of shape (n_layers - 2,), default=(100,)
        The ith element is the number of neurons in the ith hidden layer (the book's k_1..k_{T-1}).
    activation : str or list of str, default='relu'
        Hidden activation: 'identity', 'logistic' (= 'sigmoid'), 'tanh', 'relu', and layerprop's
        'leaky_relu', 'softplus'; a list gives one per hidden layer.
    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'sgd' with momentum=0 is the book's SGD; 'lbfgs' runs scipy's L-BFGS-B over the real edges only.
    alpha : float, default=0.0001
        scikit-learn's L2 term: alpha * W / (weight sum of the batch) on the coefficients, none on intercepts.
    batch_size : int or 'auto', default='auto'
        Minibatch size; 'auto' is min(200, n_samples).
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Step-size schedule for solver='sgd' (scikit-learn's rules).
    learning_rate_init : float, default=0.001
        eta_1, the initial step size (sgd, adam).
    power_t : float, default=0.5
        Exponent of 'invscaling'.
    max_iter : int, default=200
        Epochs for sgd and adam; iterations for lbfgs.
    shuffle : bool, default=True
        Shuffle the rows each epoch (sgd, adam).
    random_state : int, RandomState instance or None, default=None
        Drives the initial weights, the shuffles, the early-stopping split and a random connectivity.
    tol : float, default=1e-4
        Tolerance of the stopping rule.
    verbose : bool, default=False
        Print progress.
    warm_start : bool, default=False
        Continue from the previous fit.
    momentum : float, default=0.9
        Momentum of solver='sgd' (0 gives the book's update).
    nesterovs_momentum : bool, default=True
        Use Nesterov's momentum (solver='sgd', momentum > 0).
    early_stopping : bool, default=False
        Stop when the validation score stops improving and keep the best weights (the book's
        "output the w that performs best on a validation set"); also in partial_fit.
    validation_fraction : float, default=0.1
        Share of the training data held out when early_stopping and no validation_data.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's parameters.
    n_iter_no_change : int, default=10
        Epochs without improvement by tol before stopping.
    max_fun : int, default=15000
        Most loss evaluations for lbfgs.
    output_activation : str or None, default=None
        The output layer's activation; None picks scikit-learn's (softmax, logistic, identity, exp).
    l2 : float, default=0.0
        The book's lambda: the update is w <- w - eta (v + l2 w), v the mean gradient.
    regularize_bias : bool, default=True
        Whether l2 also applies to the biases (the book's constant-neuron edges).
    connectivity : list of arrays, float or None, default=None
        Edge masks of shape (k_{t+1}, k_t) per layer, or a density in (0, 1] for a random graph
        seeded by random_state. Phantom edges stay exactly 0 under every solver.
    validation_data : tuple (X_val, y_val[, sample_weight_val]) or None, default=None
        A validation set used instead of the validation_fraction split; its scores are
        recorded in validation_scores_ each epoch.
    device : {'cpu', 'cuda'} or None, default=None
        Where the network trains. None follows X: a torch CUDA tensor or CuPy array trains on its
        GPU, a torch CPU tensor in torch on the CPU, anything else in NumPy. 'cuda' trains on a
        GPU (needs PyTorch with CUDA): the training data are moved there once and sgd/adam epochs
        run as whole steps in CUDA graphs. 'cpu' with X on a GPU raises ValueError. Outputs come
        back in X's namespace and on its device (NumPy for NumPy input); see docs/estimators.md,
        "Array API".
    tf32 : bool, default=False
        With device='cuda', allow TF32 matrix products (faster, about 10 bits of mantissa;
        process-wide, see ``layerprop.device.set_tf32``). False keeps strict float32.
    dtype : {'float32', 'float64'} or None, default=None
        Weights' dtype; None follows the input (float32 stays float32).
    engine : str, default='auto'
        Gradient engine (see layerprop.engines); 'reference' forces the readable core.
    distributed : bool, default=False
        Data-parallel fit (sgd, adam) in a process started by ``torchrun``: every process calls
        fit or partial_fit on the same data, each batch is split among them and the gradient
        all-reduced, so all get the weights of a single-process fit (``docs/distributed.md``).
"""

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    loss_ : float
        The loss at the end of fitting (scikit-learn's definition, penalties included).
    best_loss_ : float or None
        The best training loss (sgd, adam, without early stopping).
    loss_curve_ : list of float
        The loss after each epoch (sgd, adam).
    validation_scores_ : list of float or None
        The validation score after each epoch.
    best_validation_score_ : float or None
        The best validation score.
    t_ : int
        Training samples seen.
    coefs_ : list of ndarray
        Weights in scikit-learn's orientation, ``coefs_[t] == network_.W[t].T``.
    intercepts_ : list of ndarray
        Biases, ``intercepts_[t] == network_.b[t]``.
    network_ : layerprop.Network
        The trained network, in the book's orientation.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    n_iter_ : int
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("""Multi-layer perceptron classifier: scikit-learn's MLPClassifier, trained by layerprop.

    Parameters
    ----------""" + _COMMON_DOC + """    loss : {'log_loss', 'squared'}, default='log_loss'
        'log_loss' is scikit-learn's (softmax or logistic output); 'squared' is the book's
        1/2 ||o_T - y||^2 on one-hot targets (with output_activation='sigmoid' by default).
    class_weight : dict, 'balanced' or None, default=None
        Weights per class, multiplied into sample_weight (scikit-learn's semantics).
""" + _ATTRIBUTES_DOC + """    classes_ : ndarray
        The class labels.

    Examples
    --------
    >>> import layerprop as lp
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = lp.MLPClassifier(hidden_layer_sizes=(10,), solver="lbfgs", max_iter=500, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.95
    True
    >>> clf.coefs_[0].shape, clf.network_.W[0].shape
    ((4, 10), (10, 4))
    """)

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"log_loss", "squared", "squared_error"})],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 loss="log_loss", output_activation=None, l2=0.0, regularize_bias=True, connectivity=None,
                 validation_data=None, class_weight=None, device=None, dtype=None, engine="auto",
                 distributed=False, tf32=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.loss = loss
        self.output_activation = output_activation
        self.l2 = l2
        self.regularize_bias = regularize_bias
        self.connectivity = connectivity
        self.validation_data = validation_data
        self.class_weight = class_weight
        self.device = device
        self.dtype = dtype
        self.engine = engine
        self.distributed = distributed
        self.tf32 = tf32

    def _loss_name(self):
        return "squared" if self.loss in ("squared", "squared_error") else "log_loss"

    def _output_spec(self):
        """(network loss, network output activation, scikit-learn's out_activation_)."""
        out = self.output_activation
        multiclass = self._label_binarizer.y_type_ == "multiclass"
        if self._loss_name() == "squared":
            name = ALIASES.get(out or "sigmoid", out or "sigmoid")
            if name in ("softmax", "exp"):
                raise ValueError(f"output_activation={out!r} is not available with loss='squared'")
            return "squared", name, "logistic" if name == "sigmoid" else name
        if multiclass:
            if out not in (None, "softmax"):
                raise ValueError(f"loss='log_loss' on multiclass targets needs output_activation='softmax' "
                                 f"(or None); got {out!r}")
            return "softmax_cross_entropy", "identity", "softmax"
        if out not in (None, "logistic", "sigmoid"):
            raise ValueError(f"loss='log_loss' on binary or multilabel targets needs output_activation="
                             f"'logistic' (or None); got {out!r}")
        return "binary_cross_entropy", "sigmoid", "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. "
                                 f"`self.classes_` has {self.classes_}. 'y' has {classes}.")
        Y = self._label_binarizer.transform(y).astype(bool)
        return X, y, Y

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The class labels (a label-indicator matrix for multilabel).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : MLPClassifier
            The fitted model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError("partial_fit is only available for stochastic optimizers. %s is not "
                                 "stochastic." % self.solver)
        return True

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over the given data (with early_stopping, scored on the validation set).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        classes : array of shape (n_classes,), default=None
            All the classes; required on the first call.

        Returns
        -------
        self : MLPClassifier
            The updated model.
        """
        y, classes = _host(y), _host(classes)
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predict class labels for X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_classes)
            In X's namespace and on its device for torch, CuPy and array-api-strict inputs when
            the classes are numbers (string classes come back as NumPy).
        """
        check_is_fitted(self)
        space = self._output_space(X, "predict")
        return _to_space(self._predict(_host(X)), space)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, accuracy_score)

    def predict_proba(self, X):
        """Probability estimates, in the order of ``classes_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y_prob : ndarray of shape (n_samples, n_classes)
            In X's namespace and on its device for torch, CuPy and array-api-strict inputs.
        """
        check_is_fitted(self)
        space = self._output_space(X, "predict_proba")
        return _to_space(self._predict_proba(_host(X)), space)

    def _predict_proba(self, X):
        y_pred = self._forward_pass_fast(X)
        if self._loss_name() == "squared":  # the book's loss: outputs clipped to [0, 1], rows normalized
            y_pred = np.clip(y_pred, 0, 1)
            if self._label_binarizer.y_type_ == "multiclass":
                total = y_pred.sum(axis=1, keepdims=True)
                y_pred = np.where(total > 0, y_pred / np.where(total > 0, total, 1), 1 / y_pred.shape[1])
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_y_prob : ndarray of shape (n_samples, n_classes)
            In X's namespace and on its device for torch, CuPy and array-api-strict inputs.
        """
        check_is_fitted(self)
        space = self._output_space(X, "predict_log_proba")
        y_prob = self._predict_proba(_host(X))
        return _to_space(np.log(y_prob, out=y_prob), space)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on X and y (subset accuracy for multilabel), as scikit-learn's.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
            Computed in NumPy for inputs in any namespace (torch, CuPy, array-api-strict).
        """
        return self._public_score(X, y, sample_weight, accuracy_score)

    def _network_info(self):
        return {**super()._network_info(), "classes": self.classes_.tolist()}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("""Multi-layer perceptron regressor: scikit-learn's MLPRegressor, trained by layerprop.

    Parameters
    ----------
    loss : {'squared_error', 'squared', 'poisson'}, default='squared_error'
        'squared_error' (= the book's 'squared', 1/2 ||o_T - y||^2; reported averaged over the
        outputs as scikit-learn does) or 'poisson' (half Poisson deviance, log link: exp output).""" +
               _COMMON_DOC + _ATTRIBUTES_DOC + """
    Examples
    --------
    >>> import layerprop as lp
    >>> from sklearn.datasets import make_regression
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=0.1, random_state=0)
    >>> reg = lp.MLPRegressor(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=2000, random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.99
    True
    """)

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "squared", "poisson"})],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, output_activation=None, l2=0.0, regularize_bias=True, connectivity=None,
                 validation_data=None, device=None, dtype=None, engine="auto", distributed=False, tf32=False):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.output_activation = output_activation
        self.l2 = l2
        self.regularize_bias = regularize_bias
        self.connectivity = connectivity
        self.validation_data = validation_data
        self.device = device
        self.dtype = dtype
        self.engine = engine
        self.distributed = distributed
        self.tf32 = tf32

    def _loss_name(self):
        return "poisson" if self.loss == "poisson" else "squared_error"

    def _output_spec(self):
        out = self.output_activation
        if self.loss == "poisson":
            if out not in (None, "exp"):
                raise ValueError(f"loss='poisson' uses the exp output (log link); got output_activation={out!r}")
            return "poisson", "identity", "exp"
        name = ALIASES.get(out or "identity", out or "identity")
        if name in ("softmax", "exp"):
            raise ValueError(f"output_activation={out!r} needs loss='poisson' (exp) or a classifier (softmax)")
        return "squared", name, "logistic" if name == "sigmoid" else name

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y, y

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The target values.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        self : MLPRegressor
            The fitted model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError("partial_fit is only available for stochastic optimizers. %s is not "
                                 "stochastic." % self.solver)
        return True

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over the given data (with early_stopping, scored on the validation set).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MLPRegressor
            The updated model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict(self, X):
        """Predict using the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            In X's namespace and on its device for torch, CuPy and array-api-strict inputs.
        """
        check_is_fitted(self)
        space = self._output_space(X, "predict")
        return _to_space(self._predict(_host(X)), space)

    def score(self, X, y, sample_weight=None):
        """The coefficient of determination R^2 on X and y, as scikit-learn's.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
            Computed in NumPy for inputs in any namespace (torch, CuPy, array-api-strict).
        """
        return self._public_score(X, y, sample_weight, r2_score)

    def _predict(self, X, check_input=True):
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        return y_pred.ravel() if y_pred.shape[1] == 1 else y_pred

    def _score(self, X, y, sample_weight=None):
        return self._score_with_function(X, y, sample_weight, r2_score)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
