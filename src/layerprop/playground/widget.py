"""The playground as a Jupyter widget: the same front end, the same :class:`~.session.Session`.

:class:`PlaygroundWidget` is an ``anywidget.AnyWidget``. Its ES module (``_esm``) is built from
the package's own files: ``static/app.js`` (the front end of the standalone page), the body of
``static/index.html`` and ``static/style.css``, and ``static/widget.js`` (mounts the page in a
shadow root). Nothing is fetched from a CDN or the network. The front end sends the messages it
sends over the websocket, through anywidget's ``model.send``; :meth:`PlaygroundWidget.handle_message`
answers them with a Session in the kernel, exactly as the server does (:func:`.session.answer`).

Needs ``anywidget`` (``pip install anywidget``), which is imported only here.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import anywidget
import traitlets

from .session import Session, answer, json_default

STATIC = Path(__file__).resolve().parent / "static"

__all__ = ["PlaygroundWidget", "build_esm"]


def _body(html: str) -> str:
    m = re.search(r"<body[^>]*>(.*)</body>", html, re.S | re.I)
    if m is None:
        raise RuntimeError("static/index.html has no <body>")
    return m.group(1).strip()


def build_esm() -> str:
    """The widget's ES module, from the vendored files: app.js, the page's markup and CSS, widget.js."""
    read = lambda name: (STATIC / name).read_text(encoding="utf-8")  # noqa: E731
    return "\n".join([
        "// layerprop playground widget, built by layerprop/playground/widget.py from static/app.js,",
        "// static/index.html, static/style.css and static/widget.js",
        read("app.js"),
        f"const LAYERPROP_MARKUP = {json.dumps(_body(read('index.html')))};",
        f"const LAYERPROP_CSS = {json.dumps(read('style.css'))};",
        read("widget.js"),
    ])


class _WidgetSession(Session):
    """A Session that also answers ``state`` (a new view asks for the current state)."""

    def on_state(self, msg):
        self._need_net()
        return self.state()


class PlaygroundWidget(anywidget.AnyWidget):
    """The layerprop playground in a notebook: the standalone page's front end, the math in Python.

    Parameters
    ----------
    config : dict, optional
        An initial configuration, with the keys of the page's URL: ``dataset`` (``"xor"``,
        ``"circle"``, ``"gauss"``, ``"spiral"``, ``"plane"``, ``"multigauss"`` or a bundled
        data set), ``noise``, ``n_samples``, ``test_fraction``, ``data_seed``, ``features``,
        ``hidden`` (``[8, 8]`` or ``"8,8"``), ``activations`` (one per hidden layer, or one for
        all), ``head``, ``bias``, ``density``, ``seed``, ``optimizer``, ``eta``, ``schedule``,
        ``lam``, ``batch_size``, ``eval_every``, ``per_update``. Missing keys take the defaults.
    **settings
        The same keys as keyword arguments; they override ``config``.

    Raises
    ------
    layerprop.playground.session.SettingError, layerprop.data.DataError
        A bad setting or data set: the message names it (both are ``ValueError``).

    Examples
    --------
    >>> from layerprop.playground import PlaygroundWidget
    >>> w = PlaygroundWidget(dataset="circle", hidden=[4, 4], activations="relu")
    >>> w                                 # doctest: +SKIP
    >>> w.train(500)["loss"] < 0.25       # doctest: +SKIP
    >>> net = w.network                   # a copy of the current lp.Network
    """

    _esm = build_esm()
    #: the configuration the Session accepted (read-only; change it with :meth:`configure`)
    config = traitlets.Dict(read_only=True).tag(sync=True)

    def __init__(self, config: dict | None = None, **settings):
        super().__init__()
        self._session = _WidgetSession()
        try:
            self._session.handle({"type": "configure", "config": {**(config or {}), **settings}})
        except Exception:
            self._session.close()
            raise
        self._sync_config()
        self.on_msg(self._on_custom_msg)

    # -- the front end's messages ----------------------------------------------------------------
    def _on_custom_msg(self, widget, content, buffers):
        for reply in self.handle_message(content):
            self.send(reply)

    def handle_message(self, msg) -> list:
        """The replies to one message from the front end, as the websocket would send them.

        Failures become ``{"type": "error", ...}`` replies (the page shows them). Each reply
        carries the ``view`` of the message, so that only the view that asked acts on it.
        """
        view = msg.get("view") if isinstance(msg, dict) else None
        replies = [self._jsonable(r) for r in answer(self._session, msg)]
        for r in replies:
            r["view"] = view
        self._sync_config()
        return replies

    @staticmethod
    def _jsonable(reply: dict) -> dict:
        """The reply as the websocket's JSON would carry it (numpy numbers as numbers; no NaN)."""
        try:
            return json.loads(json.dumps(reply, allow_nan=False, default=json_default))
        except ValueError as e:
            return {"type": "error", "message": f"a reply could not be sent ({e})", "kind": "internal",
                    **({"id": reply["id"]} if "id" in reply else {})}

    def _push(self, msg: dict) -> list:
        """Run a message from Python (errors raise) and show the replies in every view."""
        replies = self._session.handle(msg)
        self._sync_config()
        for r in replies:
            out = self._jsonable(r)
            out["view"] = None  # from the kernel, not asked for by a view
            self.send(out)
        return replies

    def _sync_config(self):
        if self._session.config is not None and self._session.config != self.config:
            self.set_trait("config", copy.deepcopy(self._session.config))

    # -- Python API -------------------------------------------------------------------------------
    @property
    def session(self) -> Session:
        """The Session that computes every number the widget shows."""
        return self._session

    @property
    def network(self):
        """A copy of the current network (an ``lp.Network``; its inputs are the standardized
        features, see :meth:`export_model` for a file that records the scaling)."""
        return self._session.net.copy()

    def configure(self, config: dict | None = None, **settings) -> None:
        """Change settings (keys as in the constructor); the others keep their values."""
        self._push({"type": "configure", "config": {**self._session.config, **(config or {}), **settings}})

    def train(self, iterations: int | None = None) -> dict:
        """Run SGD for ``iterations`` iterations (default: the ``per_update`` setting) and
        return the metrics (``loss``, ``test_loss``, ``accuracy``, ...); the views redraw."""
        msg = {"type": "train"} if iterations is None else {"type": "train", "iterations": iterations}
        return self._push(msg)[-1]["metrics"]

    def reset(self) -> None:
        """New initial weights (the Reset button)."""
        self._push({"type": "reset"})

    def export_model(self, path) -> Path:
        """Save the model file that Export model downloads (safetensors, read by ``lp.load``)."""
        import base64

        path = Path(path)
        path.write_bytes(base64.b64decode(self._session.handle({"type": "export"})[0]["data"]))
        return path

    def close(self):
        super().close()
        self._session.close()
