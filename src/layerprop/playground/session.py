"""One playground session: data, network, optimizer and training state, driven by JSON messages.

Every number the page shows is computed here, by the same library the rest of layerprop uses
(``layerprop.data`` for data, ``Network`` / ``engines`` / ``optim`` / ``schedules`` /
``sampling`` / ``sgd.combine`` for training, ``trace`` and ``gradcheck`` for the example walk,
``io`` for model files). The browser only draws what it receives.

A configuration is a flat dict (it also lives in the page's URL); :func:`check_config` is the one
place where it is validated, with messages that name the setting and the bad value.
"""

from __future__ import annotations

import base64
import logging
import math
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .. import io as lp_io
from ..data import DataError, list_datasets, load_data, make_toy_2d, train_test_split_indices
from ..engines import select_engine
from ..gradcheck import gradcheck
from ..graph import LayeredGraph
from ..losses import softmax
from ..network import Network
from ..optim import OPTIMIZERS, get_optimizer
from ..sampling import batch_rows
from ..schedules import SCHEDULES, get_schedule
from ..sgd import combine
from ..theory import network_facts
from ..trace import DELTA_T_FORMULAS, LOSS_FORMULAS, trace_example

TOY = ("circle", "xor", "gauss", "spiral", "plane", "multigauss")
HIDDEN_ACTIVATIONS = ("tanh", "sigmoid", "relu", "leaky_relu", "softplus", "identity")
# output head: (output activation, loss); "auto" picks the book's for 2 classes
HEADS = {
    "sigmoid+squared": ("sigmoid", "squared"),
    "softmax+cross_entropy": ("identity", "softmax_cross_entropy"),
    "sigmoid+binary_cross_entropy": ("sigmoid", "binary_cross_entropy"),
    "identity+squared": ("identity", "squared"),
}
DERIVED = ("x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)")

# limits: beyond them a setting is refused with a message (the server stays responsive)
MAX_HIDDEN_LAYERS = 16
MAX_NEURONS = 1024
MAX_WEIGHTS = 1_000_000
MAX_SAMPLES = 20_000
MAX_PER_UPDATE = 10_000
MAX_UPLOAD_BYTES = 5_000_000
MAX_MODEL_BYTES = 50_000_000
DRAW_LAYERS = 8  # hidden layers drawn neuron by neuron
DRAW_NEURONS = 32  # neurons per layer drawn one by one
GRID = 48  # heatmap resolution (GRID x GRID)
GRADCHECK_MAX_EDGES = 5000

DEFAULTS = {
    "dataset": "xor", "noise": 0.0, "n_samples": 500, "test_fraction": 0.3, "data_seed": 0,
    "target": "", "features": ["x1", "x2"],
    "hidden": [8, 8], "activations": ["tanh", "tanh"], "head": "auto", "bias": True,
    "density": 1.0, "phantom": [], "seed": 0,
    "optimizer": "sgd", "eta": 0.1, "schedule": "constant", "lam": 0.0, "batch_size": 10,
    "eval_every": 10, "per_update": 10,
}
DATA_KEYS = ("dataset", "noise", "n_samples", "test_fraction", "data_seed", "target")
NET_KEYS = ("features", "hidden", "activations", "head", "bias", "density", "phantom", "seed")
TRAIN_KEYS = ("optimizer", "eta", "schedule", "lam", "batch_size", "eval_every", "per_update")


log = logging.getLogger("layerprop.playground")


class SettingError(ValueError):
    """A playground setting out of range: the message names the setting and the value."""


def options() -> dict:
    """What the page may choose from (data sets, activations, heads, optimizers, limits)."""
    bundled = [name for name, _, _ in list_datasets() if name not in TOY]
    return {"toy": list(TOY), "bundled": bundled, "activations": list(HIDDEN_ACTIVATIONS),
            "heads": ["auto", *HEADS], "optimizers": list(OPTIMIZERS), "schedules": list(SCHEDULES),
            "derived": list(DERIVED), "defaults": DEFAULTS, "onnx": _onnx_available(),
            "limits": {"hidden_layers": MAX_HIDDEN_LAYERS, "neurons": MAX_NEURONS, "weights": MAX_WEIGHTS,
                       "samples": MAX_SAMPLES, "upload_bytes": MAX_UPLOAD_BYTES}}


def _onnx_available() -> bool:
    """Whether ONNX export can work here: ``to_onnx`` imports onnx only when called."""
    from importlib.util import find_spec
    return find_spec("onnx") is not None


# -- configuration ---------------------------------------------------------------------------------
def _number(cfg, key, lo, hi, integer=False, lo_open=False):
    v = cfg[key]
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise SettingError(f"{key} must be a number; got {v!r}") from None
    if not math.isfinite(x) or x < lo or x > hi or (lo_open and x == lo) or (integer and x != int(x)):
        kind = "an integer" if integer else "a number"
        low = f"> {lo}" if lo_open else f">= {lo}"
        raise SettingError(f"{key} must be {kind} {low} and <= {hi}; got {v!r}")
    return int(x) if integer else x


def _int_list(v, key):
    if isinstance(v, str):
        v = [s for s in v.replace(" ", "").split(",") if s != ""]
    if not isinstance(v, (list, tuple)):
        raise SettingError(f"{key} must be a list of layer sizes like 8,8; got {v!r}")
    out = []
    for n, s in enumerate(v):
        try:
            k = int(s) if not isinstance(s, bool) and float(s) == int(float(s)) else None
        except (TypeError, ValueError):
            k = None
        if k is None:
            raise SettingError(f"{key}[{n}] must be a whole number of neurons; got {s!r}")
        if not 1 <= k <= MAX_NEURONS:
            raise SettingError(f"{key}[{n}] = {k} neurons: the playground allows 1 to {MAX_NEURONS} "
                               f"neurons per layer (use the library or the CLI for larger networks)")
        out.append(k)
    if len(out) > MAX_HIDDEN_LAYERS:
        raise SettingError(f"{key} has {len(out)} hidden layers; the playground allows at most {MAX_HIDDEN_LAYERS}")
    return out


def check_config(raw) -> dict:
    """A full, validated configuration from a (partial) one: defaults fill what is missing."""
    if not isinstance(raw, dict):
        raise SettingError(f"config must be an object; got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise SettingError(f"unknown setting(s): {', '.join(map(str, unknown))}")
    cfg = {**DEFAULTS, **raw}
    out = {"dataset": str(cfg["dataset"]), "target": str(cfg["target"] or "")}
    out["noise"] = _number(cfg, "noise", 0, 0.5)
    out["n_samples"] = _number(cfg, "n_samples", 10, MAX_SAMPLES, integer=True)
    out["test_fraction"] = _number(cfg, "test_fraction", 0, 0.9)
    out["data_seed"] = _number(cfg, "data_seed", 0, 2**31 - 1, integer=True)
    feats = cfg["features"]
    if isinstance(feats, str):
        feats = [f for f in feats.split(",") if f]
    if not isinstance(feats, (list, tuple)) or any(f not in DERIVED for f in feats):
        raise SettingError(f"features must be chosen from {', '.join(DERIVED)}; got {feats!r}")
    out["features"] = [f for f in DERIVED if f in feats] or ["x1", "x2"]
    out["hidden"] = _int_list(cfg["hidden"], "hidden")
    acts = cfg["activations"]
    if isinstance(acts, str):
        acts = [a for a in acts.split(",") if a]
    if not isinstance(acts, (list, tuple)) or any(a not in HIDDEN_ACTIVATIONS for a in acts):
        raise SettingError(f"activations must be chosen from {', '.join(HIDDEN_ACTIVATIONS)}; got {acts!r}")
    acts = list(acts) or ["tanh"]
    out["activations"] = [acts[t] if t < len(acts) else acts[-1] for t in range(len(out["hidden"]))]
    if cfg["head"] not in ("auto", *HEADS):
        raise SettingError(f"head must be one of auto, {', '.join(HEADS)}; got {cfg['head']!r}")
    out["head"] = cfg["head"]
    out["bias"] = cfg["bias"] not in (False, "false", "0", 0, "off")
    out["density"] = _number(cfg, "density", 0, 1, lo_open=True)
    out["phantom"] = _edge_list(cfg["phantom"])
    out["seed"] = _number(cfg, "seed", 0, 2**31 - 1, integer=True)
    if cfg["optimizer"] not in OPTIMIZERS:
        raise SettingError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {cfg['optimizer']!r}")
    out["optimizer"] = cfg["optimizer"]
    out["eta"] = _number(cfg, "eta", 0, 100, lo_open=True)
    if cfg["schedule"] not in SCHEDULES or cfg["schedule"] == "cosine":
        allowed = [s for s in SCHEDULES if s != "cosine"]
        raise SettingError(f"schedule must be one of {', '.join(allowed)}; got {cfg['schedule']!r}")
    out["schedule"] = cfg["schedule"]
    out["lam"] = _number(cfg, "lam", 0, 10)
    out["batch_size"] = _number(cfg, "batch_size", 1, MAX_SAMPLES, integer=True)
    out["eval_every"] = _number(cfg, "eval_every", 1, 100_000, integer=True)
    out["per_update"] = _number(cfg, "per_update", 1, MAX_PER_UPDATE, integer=True)
    return out


def _edge_list(v) -> list:
    if isinstance(v, str):
        v = [e.split(".") for e in v.split(";") if e]
    if not isinstance(v, (list, tuple)):
        raise SettingError(f"phantom must be a list of edges [t, i, j]; got {v!r}")
    out = set()
    for n, e in enumerate(v):
        try:
            t, i, j = (int(z) for z in e)
        except (TypeError, ValueError):
            raise SettingError(f"phantom[{n}] must be an edge [t, i, j] of integers; got {e!r}") from None
        out.add((t, i, j))
    return [list(e) for e in sorted(out)]


# -- helpers ---------------------------------------------------------------------------------------
def _fmt(v) -> str:
    return f"{float(v):.4g}"


def _p(v) -> str:
    """A factor in a product: negative numbers in parentheses."""
    s = _fmt(v)
    return f"({s})" if s.startswith("-") else s


def _round(a, digits=4) -> list:
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()


def _derive(X2: np.ndarray, names) -> np.ndarray:
    """The chosen input features of 2-D points (x1, x2, x1^2, ...)."""
    x1, x2 = X2[:, 0], X2[:, 1]
    cols = {"x1": x1, "x2": x2, "x1^2": x1 * x1, "x2^2": x2 * x2, "x1*x2": x1 * x2,
            "sin(x1)": np.sin(x1), "sin(x2)": np.sin(x2)}
    return np.column_stack([cols[n] for n in names])


class Session:
    """The state of one page: call :meth:`handle` with each message; it returns the replies."""

    def __init__(self, tmpdir=None):
        self._tmp = tempfile.TemporaryDirectory(prefix="layerprop-playground-") if tmpdir is None else None
        self.tmpdir = Path(tmpdir or self._tmp.name)
        self.upload = None  # (file name, bytes) of the user's CSV
        self.config = None
        self.net = None
        self._walk = None

    def close(self):
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- dispatch --
    def handle(self, msg: dict) -> list:
        """Answer one message from the page: a list of reply messages (dicts)."""
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise SettingError("a message must be an object with a 'type'")
        kind = msg["type"]
        handler = getattr(self, f"on_{kind}", None) if kind.isidentifier() else None
        if handler is None:
            raise SettingError(f"unknown message type {kind!r}")
        out = handler(msg)
        out = out if isinstance(out, list) else [out]
        if "id" in msg:
            for m in out:
                m.setdefault("id", msg["id"])
        return out

    def on_hello(self, msg):
        return {"type": "options", **options()}

    def on_configure(self, msg):
        cfg = check_config(msg.get("config", {}))
        old = self.config
        if old is not None and self.net is not None and all(cfg[k] == old[k] for k in DATA_KEYS + NET_KEYS):
            self.config = cfg
            self._new_optimizer()
            return {"type": "config", "config": cfg}
        self._build(cfg)
        return self.state()

    def on_reset(self, msg):
        if self.config is None:
            raise SettingError("nothing to reset yet: send a configuration first")
        self._build(self.config)
        return self.state()

    def on_train(self, msg):
        """``iterations`` SGD iterations (default: the per_update setting), then an update."""
        self._need_net()
        n = msg.get("iterations", self.config["per_update"])
        n = _number({"iterations": n}, "iterations", 1, MAX_PER_UPDATE, integer=True)
        self.train(n)
        return self.update()

    def on_neuron(self, msg):
        """The output o_{t,i} of one neuron over the heatmap grid (for the hover view)."""
        self._need_net()
        if self.grid is None:
            raise SettingError("neuron heatmaps need 2-D data")
        t, i = int(msg.get("t", -1)), int(msg.get("i", -1))
        if not (0 <= t <= self.net.T and 0 <= i < self.net.k[t]):
            raise SettingError(f"no neuron v_{{{t},{i}}} in a network of sizes {list(self.net.k)}")
        o = self.net.forward(self.grid_inputs).o[t][:, i]
        lo, hi = float(o.min()), float(o.max())
        return {"type": "neuron", "t": t, "i": i, "grid": _round(o, 3), "range": [lo, hi]}

    def on_toggle_edge(self, msg):
        """Make a real edge phantom (weight 0, never updated) or a phantom edge real again."""
        self._need_net()
        try:
            t, i, j = (int(msg[k]) for k in ("t", "i", "j"))
        except (KeyError, TypeError, ValueError):
            raise SettingError("toggle_edge needs integers t, i, j") from None
        k = self.net.k
        if not (0 <= t < self.net.T and 0 <= i < k[t + 1] and 0 <= j < k[t]):
            raise SettingError(f"no edge (t, i, j) = ({t}, {i}, {j}) in a network of sizes {list(k)}")
        masks = [np.array(m) for m in self.net.masks]
        masks[t][i, j] = not masks[t][i, j]
        self._set_masks(masks)
        edge = [t, i, j]
        ph = [e for e in self.config["phantom"] if e != edge]
        if not masks[t][i, j]:
            ph.append(edge)
        self.config["phantom"] = sorted(ph)
        return [{"type": "network", **self.network_view(), "config": self.config}, self.update(evaluate=True)]

    def on_sparsity(self, msg):
        """A random edge set with the given density (each edge kept with that probability)."""
        cfg = dict(self.config or DEFAULTS)
        cfg["density"] = msg.get("density", cfg["density"])
        cfg["phantom"] = []
        cfg["seed"] = msg.get("seed", cfg["seed"])
        return self.on_configure({"config": cfg})

    def on_upload(self, msg):
        """A CSV file from the page (base64): read with layerprop.data, like the CLI does."""
        name = Path(str(msg.get("name") or "upload.csv")).name
        data = _b64(msg.get("data"), MAX_UPLOAD_BYTES, "the uploaded file")
        suffix = Path(name).suffix.lower()
        if suffix not in (".csv", ".tsv", ".txt"):
            raise DataError(f"{name}: upload a .csv, .tsv or .txt file (got {suffix or 'no extension'})")
        self.upload = (name, data)
        cfg = dict(self.config or DEFAULTS)
        cfg.update(dataset="upload:" + name, target=str(msg.get("target") or ""), features=["x1", "x2"])
        try:
            return self.on_configure({"config": cfg})
        except Exception:
            self.upload = None
            raise

    def on_walk(self, msg):
        """Step ``step`` of the example walk of row ``row`` (computed once per row and iterate)."""
        self._need_net()
        row = _number({"row": msg.get("row", 0)}, "row", 0, self.n_train - 1, integer=True)
        key = (row, self.iteration, id(self.net))
        if self._walk is None or self._walk[0] != key:
            self._walk = (key, self._walk_steps(row))
        steps = self._walk[1]
        s = _number({"step": msg.get("step", 0)}, "step", 0, len(steps) - 1, integer=True)
        return {"type": "walk", "row": row, "step": s, "steps": len(steps), **steps[s]}

    def on_export(self, msg):
        fmt = msg.get("format", "safetensors")
        self._need_net()
        if fmt == "safetensors":
            path = lp_io.save(self.net, self.tmpdir / "model.safetensors", info={"playground": self._info()})
            return _file_msg("layerprop-model.safetensors", "application/octet-stream", path.read_bytes())
        if fmt == "onnx":
            if not _onnx_available():
                raise SettingError("ONNX export is not available in this installation")
            import layerprop
            path = self.tmpdir / "model.onnx"
            layerprop.to_onnx(self.net, path)
            return _file_msg("layerprop-model.onnx", "application/octet-stream", path.read_bytes())
        raise SettingError(f"format must be safetensors or onnx; got {fmt!r}")

    def on_import_model(self, msg):
        """A model file (safetensors, read by lp.load: no pickle) in place of the current network."""
        self._need_net()
        data = _b64(msg.get("data"), MAX_MODEL_BYTES, "the model file")
        name = Path(str(msg.get("name") or "model.safetensors")).name
        path = self.tmpdir / "import.safetensors"
        path.write_bytes(data)
        try:
            net = lp_io.load(path)
        except lp_io.ModelFileError as e:  # name the user's file, not the server's temporary copy
            raise lp_io.ModelFileError(str(e).replace(str(path), name)) from None
        if net.k[0] != self.net.k[0] or net.k[-1] != self.net.k[-1]:
            raise lp_io.ModelFileError(
                f"{name}: the model has {net.k[0]} inputs and "
                f"{net.k[-1]} outputs; this data needs {self.net.k[0]} inputs ({', '.join(self.feature_names)}) "
                f"and {self.net.k[-1]} outputs")
        net = net.astype("float64")
        self.config["hidden"] = list(net.k[1:-1])
        hidden_acts = list(net.activation_names[:-1])
        self.config["activations"] = [a if a in HIDDEN_ACTIVATIONS else "tanh" for a in hidden_acts]
        self.config["bias"] = net.bias_masks is not None
        self.config["phantom"] = [[t, int(i), int(j)] for t, m in enumerate(net.masks) for i, j in zip(*np.nonzero(~m))]
        self._start(net)
        return self.state()

    # -- building --
    def _need_net(self):
        if self.net is None:
            raise SettingError("no network yet: send a configuration first")

    def _load_data(self, cfg):
        name = cfg["dataset"]
        if name in TOY:
            return make_toy_2d(name, cfg["n_samples"], cfg["noise"], cfg["data_seed"])
        if name.startswith("upload:"):
            if self.upload is None or "upload:" + self.upload[0] != name:
                raise DataError("upload the CSV file again (uploaded data is not kept in the link)")
            path = self.tmpdir / self.upload[0]
            path.write_bytes(self.upload[1])
            try:
                return load_data(path, target=cfg["target"] or None, max_bytes=MAX_UPLOAD_BYTES)
            except DataError as e:  # name the user's file, not the server's temporary folder
                raise DataError(str(e).replace(str(self.tmpdir) + "/", "")) from None
        if name not in {n for n, _, _ in list_datasets()}:
            raise DataError(f"unknown data set {name!r}")
        return load_data(name)

    def _build(self, cfg):
        ds = self._load_data(cfg)
        if ds.y is None:
            raise DataError(f"{ds.name}: no target column")
        n = ds.X.shape[0]
        if n > MAX_SAMPLES:
            raise DataError(f"{ds.name}: {n} rows; the playground takes at most {MAX_SAMPLES}")
        if n < 2:
            raise DataError(f"{ds.name}: at least 2 rows are needed; got {n}")
        two_d = ds.X.shape[1] == 2
        raw = ds.X.astype(np.float64)
        names = list(cfg["features"]) if two_d else list(ds.feature_names)
        X = _derive(raw, names) if two_d else raw
        # target encoding
        if ds.task == "classification":
            classes = list(ds.classes)
            index = {c: n for n, c in enumerate(classes)}
            labels = np.array([index[v] for v in ds.y.tolist()], dtype=np.int64)
            C = len(classes)
            head = cfg["head"] if cfg["head"] != "auto" else ("sigmoid+squared" if C == 2 else "softmax+cross_entropy")
            if head == "identity+squared":
                raise SettingError("head identity+squared is for regression; this data set has classes")
            k_T = 1 if (C == 2 and head != "softmax+cross_entropy") else C
            Y = labels[:, None].astype(np.float64) if k_T == 1 else np.eye(C)[labels]
            y_mean, y_std = 0.0, 1.0
        else:
            classes, labels, C = None, None, 0
            head = cfg["head"] if cfg["head"] != "auto" else "identity+squared"
            if head != "identity+squared":
                raise SettingError(f"head {head} needs classes; for regression use identity+squared")
            y = ds.y.astype(np.float64)
            y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
            Y = ((y - y_mean) / y_std)[:, None]
            k_T = 1
        # train/test split
        try:
            tr, te = train_test_split_indices(n, cfg["test_fraction"], cfg["data_seed"],
                                              stratify=labels if classes is not None else None)
        except ValueError as e:
            raise SettingError(f"test_fraction = {cfg['test_fraction']}: {e}") from None
        mean, std = X[tr].mean(axis=0), X[tr].std(axis=0)
        std[std == 0] = 1.0
        sizes = [X.shape[1], *cfg["hidden"], k_T]
        n_weights = sum(sizes[t] * sizes[t + 1] for t in range(len(sizes) - 1))
        if n_weights > MAX_WEIGHTS:
            raise SettingError(f"the network {'-'.join(map(str, sizes))} has {n_weights} weights; "
                               f"the playground allows at most {MAX_WEIGHTS}")
        self.config, self.ds, self.two_d, self.raw = cfg, ds, two_d, raw
        self.feature_names, self.mean, self.std = names, mean, std
        self.classes, self.labels, self.head = classes, labels, head
        self.y_mean, self.y_std = y_mean, y_std
        Xs = (X - mean) / std
        self.Xtr, self.Ytr, self.Xte, self.Yte = Xs[tr], Y[tr], Xs[te], Y[te]
        self.tr, self.te = tr, te
        self.n_train = len(tr)
        self._grid(raw)
        out_act, loss = HEADS[head]
        if cfg["density"] < 1:
            graph = LayeredGraph.random(sizes, cfg["density"], seed=cfg["seed"], bias=cfg["bias"])
        else:
            graph = LayeredGraph.dense(sizes, bias=cfg["bias"])
        masks = [np.array(m) for m in graph.masks]
        for t, i, j in cfg["phantom"]:
            if 0 <= t < len(masks) and 0 <= i < masks[t].shape[0] and 0 <= j < masks[t].shape[1]:
                masks[t][i, j] = False
        cfg["phantom"] = [[t, int(i), int(j)] for t, m in enumerate(masks) for i, j in zip(*np.nonzero(~m))] \
            if cfg["density"] == 1 else cfg["phantom"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            graph = LayeredGraph(sizes, masks, graph.bias_masks)
        self.notices = [str(w.message) for w in caught]
        net = Network(graph, activation=list(cfg["activations"]), output_activation=out_act, loss=loss,
                      seed=cfg["seed"])
        self._start(net)

    def _start(self, net):
        self.net = net
        self.iteration = 0
        self.history = []  # (i, train loss, test loss)
        self.best = None  # (i, test loss)
        self._walk = None
        self._new_optimizer()
        self._evaluate()

    def _new_optimizer(self):
        cfg = self.config
        self.opt = get_optimizer(cfg["optimizer"], self.net, lam=cfg["lam"])
        self.eta = get_schedule(cfg["schedule"], cfg["eta"])
        # the playground trains batch by batch (the compiled batch-1 loop is not needed here)
        self.engine = select_engine(self.net, batch_size=cfg["batch_size"], optimizer=cfg["optimizer"])

    def _set_masks(self, masks):
        """The same network with a new edge set E: weights kept on real edges, 0 on phantom ones."""
        net = self.net
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            graph = LayeredGraph(net.k, masks, net.bias_masks)
        self.notices = [str(w.message) for w in caught]
        new = Network(graph, activation=list(net.activation_names[:-1]), output_activation=net.activation_names[-1],
                      loss=net.loss_name, seed=0)
        for t in range(net.T):
            new.W[t] = np.where(masks[t], net.W[t], 0.0)
            if net.b[t] is not None:
                new.b[t] = net.b[t]
        self.net = new
        self._walk = None
        self._new_optimizer()

    def _grid(self, raw):
        """The heatmap grid over the 2-D data's bounding box (with a margin)."""
        if not self.two_d:
            self.grid = self.grid_inputs = None
            return
        lo, hi = raw.min(axis=0), raw.max(axis=0)
        pad = (hi - lo) * 0.05 + 1e-9
        lo, hi = lo - pad, hi + pad
        u = np.linspace(lo[0], hi[0], GRID)
        v = np.linspace(hi[1], lo[1], GRID)  # top row first (largest x2)
        U, V = np.meshgrid(u, v)
        self.grid = np.column_stack([U.ravel(), V.ravel()])
        self.extent = [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]
        self.grid_inputs = (_derive(self.grid, self.feature_names) - self.mean) / self.std

    # -- training --
    def train(self, n):
        """Iterations i+1 .. i+n of SGD (SSBD 20.6): w <- w - eta_i (v_i + lam w), via the library's
        sampling, engine, combine and optimizer; evaluation every ``eval_every`` iterations."""
        cfg, net = self.config, self.net
        b = min(cfg["batch_size"], self.n_train)
        for i in range(self.iteration + 1, self.iteration + n + 1):
            rows = batch_rows(cfg["seed"], i, self.n_train, b)
            sums = self.engine.gradient_sums(net, self.Xtr[rows], self.Ytr[rows], None)
            loss, gW, gb = combine(*sums)
            if not math.isfinite(loss):
                self.iteration = i
                raise SettingError(f"training diverged at iteration {i} (the loss is {loss}); "
                                   "lower the step size eta and press Reset")
            self.opt.step(net, gW, gb, self.eta(i))
            self.iteration = i
            if i % cfg["eval_every"] == 0:
                self._evaluate()

    def _evaluate(self):
        tr_loss = self.net.loss_value(self.Xtr, self.Ytr)
        te_loss = self.net.loss_value(self.Xte, self.Yte) if len(self.te) else None
        point = (self.iteration, tr_loss, te_loss)
        if self.history and self.history[-1][0] == self.iteration:
            self.history[-1] = point
        else:
            self.history.append(point)
        score = te_loss if te_loss is not None else tr_loss
        if math.isfinite(score) and (self.best is None or score < self.best[1]):
            self.best = (self.iteration, score)

    # -- views --
    def _predict_view(self, X):
        """Heatmap values: P(class 1) for one output, (class, confidence) for several, y for regression."""
        o = self.net.predict(X)
        if self.classes is None:
            return o[:, 0] * self.y_std + self.y_mean, None
        if o.shape[1] == 1:
            return np.clip(o[:, 0], 0, 1), None
        p = softmax(o) if self.net.loss_name == "softmax_cross_entropy" else o
        return p.max(axis=1), p.argmax(axis=1)

    def _classify(self, X):
        o = self.net.predict(X)
        if o.shape[1] == 1:
            return (o[:, 0] >= 0.5).astype(np.int64)
        return o.argmax(axis=1)

    def metrics(self) -> dict:
        out = {"train_loss": self.history[-1][1] if self.history else None,
               "test_loss": self.history[-1][2] if self.history else None}
        out["loss"] = self.net.loss_value(self.Xtr, self.Ytr)
        if not math.isfinite(out["loss"]):
            out["loss"] = None
        if self.classes is not None:
            C = len(self.classes)
            use_test = len(self.te) > 0
            X = self.Xte if use_test else self.Xtr
            truth = self.labels[self.te if use_test else self.tr]
            pred = self._classify(X)
            cm = np.zeros((C, C), dtype=np.int64)
            np.add.at(cm, (truth, pred), 1)
            out["confusion"] = cm.tolist()
            out["confusion_on"] = "test" if use_test else "training"
            out["accuracy"] = float((pred == truth).mean())
            out["train_accuracy"] = float((self._classify(self.Xtr) == self.labels[self.tr]).mean())
        return out

    def update(self, evaluate=False) -> dict:
        """What the page redraws after training: iteration, losses, history, heatmap, weights."""
        if evaluate:
            self._evaluate()
        msg = {"type": "update", "iteration": self.iteration, "metrics": self.metrics(),
               "history": [[i, _safe(a), _safe(b)] for i, a, b in _thin(self.history, 400)],
               "history_len": len(self.history),
               "best": None if self.best is None else {"iteration": self.best[0], "loss": _safe(self.best[1])},
               "weights": self._weights_view(), "eta": self.eta(self.iteration + 1)}
        if self.grid is not None:
            value, cls = self._predict_view(self.grid_inputs)
            msg["heatmap"] = {"values": _round(value, 3), "classes": None if cls is None else cls.tolist(),
                              "range": [float(value.min()), float(value.max())]}
        return msg

    def _drawn(self):
        T = self.net.T
        return [self.net.k[t] <= DRAW_NEURONS and T - 1 <= DRAW_LAYERS for t in range(T + 1)]

    def _weights_view(self):
        drawn = self._drawn()
        W = []
        for t in range(self.net.T):
            if drawn[t] and drawn[t + 1]:
                W.append({"W": _round(self.net.W[t], 4), "b": None if self.net.b[t] is None else _round(self.net.b[t], 4)})
            else:
                W.append(None)
        return W

    def network_view(self) -> dict:
        net = self.net
        facts = network_facts(net)
        drawn = self._drawn()
        return {"sizes": list(net.k), "activations": list(net.activation_names), "loss": net.loss_name,
                "head": self.head, "bias": net.bias_masks is not None, "features": self.feature_names,
                "drawn": drawn,
                "masks": [m.astype(int).tolist() if drawn[t] and drawn[t + 1] else None for t, m in enumerate(net.masks)],
                "facts": {"V": facts["num_vertices"], "E": facts["num_edges"],
                          "E_without_bias": facts["num_edges_without_bias"], "depth": facts["depth"],
                          "vc_sign": facts["vc_sign"], "vc_sigmoid": facts["vc_sigmoid"],
                          "finite_precision": facts["finite_precision"]},
                "notices": list(getattr(self, "notices", []))}

    def data_view(self) -> dict:
        ds = self.ds
        out = {"name": ds.name, "task": ds.task, "n": int(ds.X.shape[0]), "n_train": self.n_train,
               "n_test": int(len(self.te)), "columns": list(ds.feature_names) + [ds.target_name],
               "target": ds.target_name, "classes": None if self.classes is None else [str(c) for c in self.classes],
               "two_d": self.two_d}
        if self.two_d:
            lab = self.labels if self.classes is not None else self.ds.y.astype(np.float64)
            out["points"] = {"x": _round(self.raw, 3), "label": _round(lab, 3) if self.classes is None else lab.tolist(),
                             "test": np.isin(np.arange(len(self.raw)), self.te).astype(int).tolist()}
            out["extent"] = self.extent
            out["grid"] = GRID
        return out

    def state(self) -> dict:
        return {"type": "state", "config": self.config, "data": self.data_view(),
                "network": self.network_view(), "update": self.update()}

    def _info(self) -> dict:
        """Metadata stored in exported model files (how to feed the model: the feature scaling)."""
        cfg = {k: v for k, v in self.config.items()}
        return {"config": cfg, "data": self.ds.name, "features": self.feature_names,
                "feature_mean": self.mean.tolist(), "feature_std": self.std.tolist(),
                "classes": None if self.classes is None else [c if isinstance(c, (str, int, float)) else str(c)
                                                               for c in (x.item() if hasattr(x, "item") else x
                                                                         for x in self.classes)],
                "target_mean": self.y_mean, "target_std": self.y_std, "iteration": self.iteration,
                "note": "inputs are standardized: x_scaled = (features - feature_mean) / feature_std"}

    # -- the example walk --
    def _walk_steps(self, row) -> list:
        """The book's Backpropagation on training row ``row``, one step per phase, numbers filled in."""
        net = self.net
        x, y = self.Xtr[row], self.Ytr[row]
        tr = trace_example(net, x, y, top=12, x_raw=self.raw[self.tr[row]] if self.two_d else None,
                           feature_names=self.feature_names, row=int(row))
        d = tr.to_dict()
        T, k = net.T, list(net.k)
        L = d["layers"]
        steps = []
        label = "" if self.classes is None else f", label {self.classes[self.labels[self.tr[row]]]}"
        steps.append({"phase": "input", "title": f"Input: training row {row}{label}",
                      "formula": "o_0 = x (features standardized)",
                      "lines": [f"o_{{0,{j}}} = {self.feature_names[j]} = {_fmt(v)}" for j, v in enumerate(L[0]["o"])][:DRAW_NEURONS]
                      + [f"y = {_vec(y)}"],
                      "highlight": {"neurons": [[0, j] for j in range(k[0])], "edges": []},
                      "values": {"0": _round(L[0]["o"])}})
        for t in range(1, T + 1):
            lines = []
            for i in range(min(k[t], 8)):
                terms = [f"{_p(net.W[t - 1][i, j])}×{_p(L[t - 1]['o'][j])}" for j in range(k[t - 1])
                         if net.masks[t - 1][i, j]]
                if len(terms) > 4:
                    terms = terms[:4] + [f"… ({len(terms) - 4} more)"]
                if net.b[t - 1] is not None and net.bias_masks[t - 1][i]:
                    terms.append(f"{_p(net.b[t - 1][i])}×1")
                lines.append(f"a_{{{t},{i}}} = {' + '.join(terms) or '0'} = {_fmt(L[t]['a'][i])}")
                lines.append(f"o_{{{t},{i}}} = {L[t]['activation']}(a_{{{t},{i}}}) = {_fmt(L[t]['o'][i])}")
            if k[t] > 8:
                lines.append(f"… {k[t] - 8} more neurons in layer {t}")
            steps.append({"phase": "forward", "title": f"Forward, layer {t} of {T}",
                          "formula": f"a_{t} = W_{t - 1} o_{t - 1} + b_{t - 1},   o_{t} = sigma_{t}(a_{t})",
                          "lines": lines, "highlight": {"neurons": [[t, i] for i in range(k[t])],
                                                        "edges": _edges_into(net, t - 1)},
                          "values": {str(t): _round(L[t]["o"])}})
        lines = [f"o_T = {_vec(L[T]['o'])},   y = {_vec(y)}",
                 f"l = {_fmt(d['loss'])}",
                 f"{DELTA_T_FORMULAS.get(net.loss_name, 'delta_T = dl/do_T')} = {_vec(L[T]['delta'])}"]
        steps.append({"phase": "loss", "title": "Loss and delta_T",
                      "formula": LOSS_FORMULAS.get(net.loss_name, net.loss_name),
                      "lines": lines, "highlight": {"neurons": [[T, i] for i in range(k[T])], "edges": []},
                      "values": {str(T): _round(L[T]["delta"])}})
        for t in range(T - 1, 0, -1):
            lines = []
            for j in range(min(k[t], 8)):
                terms = [f"{_p(net.W[t][i, j])}×{_p(L[t + 1]['delta'][i])}×{_p(L[t + 1]['sigma_prime'][i])}"
                         for i in range(k[t + 1]) if net.masks[t][i, j]]
                if len(terms) > 4:
                    terms = terms[:4] + [f"… ({len(terms) - 4} more)"]
                lines.append(f"delta_{{{t},{j}}} = {' + '.join(terms) or '0'} = {_fmt(L[t]['delta'][j])}")
            if k[t] > 8:
                lines.append(f"… {k[t] - 8} more neurons in layer {t}")
            steps.append({"phase": "backward", "title": f"Backward, layer {t}",
                          "formula": f"delta_{t} = W_{t}^T (delta_{t + 1} * sigma'(a_{t + 1})),  "
                                     f"i.e. delta_{{{t},j}} = sum_i W_{{{t},i,j}} delta_{{{t + 1},i}} sigma'(a_{{{t + 1},i}})",
                          "lines": lines, "highlight": {"neurons": [[t, j] for j in range(k[t])],
                                                        "edges": _edges_into(net, t)},
                          "values": {str(t): _round(L[t]["delta"])}})
        top = d["edges"][:12]
        steps.append({"phase": "gradient", "title": f"Gradient: the {len(top)} largest of {d['num_edges']} edge partials",
                      "formula": d["formulas"]["edge"],
                      "lines": [f"{e['tensor']}: {e['formula']}" for e in top],
                      "highlight": {"neurons": [], "edges": [[e["t"] - 1, e["i"], e["j"]] for e in top if not e["bias"]]},
                      "values": {}})
        # the update the book's SGD would make on this one example, by the library's optimizer
        eta, lam = self.eta(self.iteration + 1), self.config["lam"]
        grad = net.backprop(x, y)
        after = net.copy()
        get_optimizer("sgd", after, lam=lam).step(after, grad.W, grad.b, eta)
        lines = [f"eta_{self.iteration + 1} = {_fmt(eta)},  lambda = {_fmt(lam)}  (one example, batch size 1; "
                 "shown, not applied)"]
        for e in top:
            t, i, j = e["t"] - 1, e["i"], e["j"]
            if e["bias"]:
                w0, w1, v = net.b[t][i], after.b[t][i], grad.b[t][i]
            else:
                w0, w1, v = net.W[t][i, j], after.W[t][i, j], grad.W[t][i, j]
            lines.append(f"{e['tensor']}: {_fmt(w0)} - {_p(eta)} × ({_fmt(v)} + {_p(lam)} × {_p(w0)}) = {_fmt(w1)}")
        steps.append({"phase": "update", "title": "Update (the book's SGD step)",
                      "formula": "w <- w - eta_i (v_i + lambda w)", "lines": lines,
                      "highlight": {"neurons": [], "edges": [[e["t"] - 1, e["i"], e["j"]] for e in top if not e["bias"]]},
                      "values": {}})
        E = net.graph.num_edges()
        if E <= GRADCHECK_MAX_EDGES:
            res = gradcheck(net, x[None, :], y[None, :])
            lines = [str(res), f"checked {E} edges: (l(w + eps e) - l(w - eps e)) / (2 eps), eps = 1e-6"]
        else:
            lines = [f"skipped: {E} edges (the check runs 2 forward passes per edge; limit {GRADCHECK_MAX_EDGES})"]
        steps.append({"phase": "gradcheck", "title": "Gradient check for this example",
                      "formula": "dl/dw_e ~ (l(w + eps e) - l(w - eps e)) / (2 eps)", "lines": lines,
                      "highlight": {"neurons": [], "edges": []}, "values": {}})
        return steps


def _edges_into(net, t):
    """The real edges from layer t to layer t+1 as [t, i, j] (only for drawn layers)."""
    if net.k[t] > DRAW_NEURONS or net.k[t + 1] > DRAW_NEURONS:
        return []
    return [[t, int(i), int(j)] for i, j in zip(*np.nonzero(net.masks[t]))]


def _vec(v, n=8) -> str:
    v = list(np.ravel(np.asarray(v, dtype=np.float64)))
    more = f", … ({len(v)} values)" if len(v) > n else ""
    return "[" + ", ".join(_fmt(z) for z in v[:n]) + more + "]"


def _thin(points, n):
    """At most about n points of a curve, evenly spread, always with the first and the last."""
    if len(points) <= n:
        return points
    idx = np.unique(np.linspace(0, len(points) - 1, n).round().astype(int))
    return [points[k] for k in idx]


def _safe(v):
    return None if v is None or not math.isfinite(v) else float(v)


def _b64(data, cap, what) -> bytes:
    if not isinstance(data, str):
        raise SettingError(f"{what} is missing")
    if len(data) > (cap * 4) // 3 + 8:
        raise DataError(f"{what} is larger than the limit of {cap // 1_000_000} MB")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise DataError(f"{what} was not sent as base64") from None
    if len(raw) > cap:
        raise DataError(f"{what} is larger than the limit of {cap // 1_000_000} MB")
    return raw


def answer(session: Session, msg) -> list:
    """The replies to one parsed message; every failure becomes an error message for the page.

    The one path from a message to its replies, for the websocket (``server.py``) and the
    Jupyter widget (``widget.py``) alike.
    """
    try:
        return session.handle(msg)
    except (ValueError, TypeError, OSError) as e:  # DataError, ModelFileError, SettingError are ValueErrors
        out = {"type": "error", "message": str(e), "kind": type(e).__name__}
    except MemoryError:
        out = {"type": "error", "message": "out of memory: choose a smaller network or data set"}
    except Exception as e:  # a bug: report it in the page and keep serving
        log.exception("playground error")
        out = {"type": "error", "message": f"internal error ({type(e).__name__}: {e})", "kind": "internal"}
    if isinstance(msg, dict) and "id" in msg:
        out["id"] = msg["id"]
    if isinstance(msg, dict) and isinstance(msg.get("type"), str):
        out["request"] = msg["type"]
    return [out]


def json_default(x):
    """numpy scalars and arrays in replies as JSON numbers and lists."""
    if hasattr(x, "item"):
        return x.item()
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def _file_msg(name, mime, data: bytes) -> dict:
    return {"type": "file", "name": name, "mime": mime, "data": base64.b64encode(data).decode("ascii")}
