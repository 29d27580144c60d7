"""The playground's Jupyter widget: the Python side (messages through the widget's handler, the
same replies as the websocket) and its ES module in chromium with a fake anywidget model."""

import base64
import json
import os
import re

import numpy as np
import pytest

pytest.importorskip("anywidget")

import layerprop as lp  # noqa: E402
from layerprop import io as lp_io  # noqa: E402
from layerprop.playground.session import SettingError  # noqa: E402
from layerprop.playground.widget import PlaygroundWidget  # noqa: E402

SMALL = {"dataset": "xor", "n_samples": 200, "hidden": [4], "activations": ["tanh"], "eta": 0.3}


class Recorder:
    """The widget with its comm replaced: what it would send to the views."""

    def __init__(self, widget):
        self.w, self.sent = widget, []
        widget.send = lambda content, buffers=None: self.sent.append(content)
        self.next_id = 1

    def ask(self, msg, view="v1"):
        """Send one message the way ipywidgets delivers the front end's model.send."""
        msg = {**msg, "id": self.next_id, "view": view}
        self.next_id += 1
        n = len(self.sent)
        self.w._handle_custom_msg(msg, [])
        return self.sent[n:]


def strip(m):
    return {k: v for k, v in m.items() if k not in ("id", "view")}


@pytest.fixture
def widget():
    w = PlaygroundWidget(SMALL)
    yield w
    w.close()


# -- the Python side -----------------------------------------------------------------------------
def test_lazy_export_and_initial_config():
    from layerprop.playground import PlaygroundWidget as W

    assert W is PlaygroundWidget
    w = W(dataset="circle", hidden="4,3", activations="relu", n_samples=120, bias=False)
    net = w.network
    assert isinstance(net, lp.Network) and net.k == (2, 4, 3, 1)
    assert net.activation_names[:2] == ("relu", "relu") and net.bias_masks is None
    assert w.config["dataset"] == "circle" and w.config["hidden"] == [4, 3]
    net.W[0][:] = 99.0  # a copy: the session's network is untouched
    assert not np.any(w.session.net.W[0] == 99.0)
    w.close()


@pytest.mark.parametrize("settings, words", [({"hidden": [10**6]}, "1 to 1024"), ({"bogus": 1}, "unknown setting"),
                                             ({"dataset": "nope"}, "unknown data set")])
def test_bad_initial_config_raises(settings, words):
    with pytest.raises(ValueError, match=words):
        PlaygroundWidget(**settings)


def test_esm_is_built_from_the_vendored_files():
    from layerprop.playground.widget import STATIC, build_esm

    esm = PlaygroundWidget._esm
    assert esm == build_esm() and "\n" in esm  # a module string, not a path
    assert (STATIC / "app.js").read_text() in esm and (STATIC / "widget.js").read_text() in esm
    assert "export default { render }" in esm
    assert not re.search(r"^\s*import\b|\bimport\(", esm, re.M)  # nothing to fetch
    assert not re.search(r"https?://", esm.replace("http://www.w3.org/2000/svg", ""))  # no CDN, no network


def test_messages_answer_like_the_session(widget):
    r = Recorder(widget)
    opts = r.ask({"type": "hello"})
    assert [m["type"] for m in opts] == ["options"] and opts[0]["id"] == 1 and opts[0]["view"] == "v1"
    state = r.ask({"type": "state"})[0]
    assert state["type"] == "state" and state["network"]["sizes"] == [2, 4, 1]
    # Step: one iteration
    u = r.ask({"type": "train", "iterations": 1})[0]
    assert u["type"] == "update" and u["iteration"] == 1
    # Play: ticks of per_update iterations, the loss falls
    for _ in range(40):
        u = r.ask({"type": "train"})[0]
    assert u["iteration"] == 1 + 40 * 10 and u["metrics"]["loss"] < state["update"]["metrics"]["loss"]
    assert widget.session.iteration == u["iteration"]
    # the numbers come from the session: its network, to the 4 digits the page gets
    np.testing.assert_allclose(u["weights"][0]["W"], np.round(widget.network.W[0], 4))
    # the example walk, to the gradient check
    first = r.ask({"type": "walk", "row": 2, "step": 0})[0]
    steps = [first] + [r.ask({"type": "walk", "row": 2, "step": k})[0] for k in range(1, first["steps"])]
    assert [s["phase"] for s in steps][0] == "input" and steps[-1]["phase"] == "gradcheck"
    assert "gradcheck ok" in steps[-1]["lines"][0]
    # a bad message: an error for the page, the widget keeps working
    err = r.ask({"type": "configure", "config": {"hidden": [10**6]}})[0]
    assert err["type"] == "error" and "1 to 1024" in err["message"] and err["view"] == "v1"
    assert r.ask({"type": "nope"})[0]["type"] == "error"
    assert r.ask({"type": "train", "iterations": 1})[0]["type"] == "update"


def test_same_replies_as_the_websocket(tmp_path):
    """The widget's handler and the server's websocket give the same replies to the same messages."""
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.testclient import TestClient

    from layerprop.playground.server import create_app

    script = [{"type": "hello"}, {"type": "configure", "config": SMALL}, {"type": "train", "iterations": 1},
              {"type": "train"}, {"type": "train"}, {"type": "walk", "row": 1, "step": 0},
              {"type": "walk", "row": 1, "step": 3}, {"type": "neuron", "t": 1, "i": 0},
              {"type": "toggle_edge", "t": 0, "i": 1, "j": 0}, {"type": "train", "iterations": 5},
              {"type": "sparsity", "density": 0.5, "seed": 2}, {"type": "export", "format": "safetensors"},
              {"type": "configure", "config": {"eta": -1}}]
    w = PlaygroundWidget()
    r = Recorder(w)
    client = TestClient(create_app(allowed_hosts=("testserver",)))
    with client.websocket_connect("/ws", headers={"origin": "http://testserver"}) as conn:
        for k, msg in enumerate(script):
            mine = r.ask(msg)
            conn.send_json({**msg, "id": r.next_id - 1})
            theirs = [conn.receive_json() for _ in mine]
            assert [m["id"] for m in theirs] == [m["id"] for m in mine]
            assert [strip(m) for m in mine] == [strip(m) for m in theirs], (k, msg["type"])
    f = r.sent[-2]
    assert f["type"] == "file"
    path = tmp_path / f["name"]
    path.write_bytes(base64.b64decode(f["data"]))
    net = lp_io.load(path)
    np.testing.assert_array_equal(net.W[1], w.session.net.W[1])
    w.close()


def test_python_api_pushes_to_the_views(widget, tmp_path):
    r = Recorder(widget)
    m = widget.train(100)
    assert widget.session.iteration == 100 and m["loss"] == r.sent[-1]["metrics"]["loss"]
    assert r.sent[-1]["type"] == "update" and r.sent[-1]["view"] is None  # mirrored by every view
    widget.configure(hidden=[3, 3])
    assert r.sent[-1]["type"] == "state" and widget.network.k == (2, 3, 3, 1) and widget.config["hidden"] == [3, 3]
    with pytest.raises(SettingError):
        widget.configure(eta=-1)
    widget.reset()
    assert widget.session.iteration == 0
    net = lp.load(widget.export_model(tmp_path / "m.safetensors")) if hasattr(lp, "load") else \
        lp_io.load(widget.export_model(tmp_path / "m.safetensors"))
    assert net.k == (2, 3, 3, 1) and net.info["playground"]["config"]["hidden"] == [3, 3]


def test_replies_are_plain_json(widget):
    r = Recorder(widget)
    for m in r.ask({"type": "state"}) + r.ask({"type": "train"}):
        assert json.loads(json.dumps(m, allow_nan=False)) == m


# -- the ES module in chromium -----------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><title>widget harness</title></head>
<body>
<div id="view1"></div><div id="view2"></div>
<script type="module">
// a fake anywidget model: get/set/on/off/send; send goes to the kernel side through pyAnswer
const handlers = {}, state = {}, sent = [];
const model = {
  get: (k) => state[k], set: (k, v) => { state[k] = v; }, save_changes() {},
  on(ev, cb) { (handlers[ev] = handlers[ev] || []).push(cb); },
  off(ev, cb) { handlers[ev] = (handlers[ev] || []).filter((f) => f !== cb); },
  send(msg) {
    sent.push(JSON.parse(JSON.stringify(msg)));
    window.pyAnswer(msg).then((replies) => replies.forEach((r) => (handlers["msg:custom"] || []).forEach((cb) => cb(r, []))));
  },
};
window.fake = { model, sent, handlers };
const mod = await import("./widget.mjs");
window.cleanups = ["view1", "view2"].map((id) => mod.default.render({ model, el: document.getElementById(id) }));
window.rendered = true;
</script>
</body></html>
"""


@pytest.fixture(scope="module")
def chromium():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (scripts/install_chromium.sh installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                                              "--no-first-run", "--disable-background-networking"])
        yield b
        b.close()


def test_esm_renders_in_chromium_and_step_sends_train(chromium):
    from playwright.sync_api import expect

    w = PlaygroundWidget(SMALL)
    page = chromium.new_page(viewport={"width": 1300, "height": 1000})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda req: requests.append(req.url))
    files = {"/harness.html": ("text/html", HARNESS), "/widget.mjs": ("text/javascript", w._esm)}

    def serve(route):
        path = "/" + route.request.url.split("/", 3)[3]
        if path in files:
            route.fulfill(status=200, content_type=files[path][0], body=files[path][1])
        else:
            route.fulfill(status=404, body="")

    page.route("http://widget.test/**", serve)
    page.expose_function("pyAnswer", lambda msg: w.handle_message(msg))
    page.goto("http://widget.test/harness.html")
    page.wait_for_function("() => window.rendered && [...document.querySelectorAll('#view1, #view2')]"
                           ".every((el) => el.layerprop && el.layerprop.updates > 0)")
    sent = lambda: page.evaluate("() => window.fake.sent")  # noqa: E731
    first = sent()
    assert [m["type"] for m in first[:2]] == ["hello", "state"]
    views = {m["view"] for m in first}
    assert len(views) == 2 and None not in views  # each view has its own id
    # the first view (Playwright's locators pierce the open shadow roots)
    view1 = page.locator("#view1")
    status = view1.get_by_role("status")
    expect(status).to_have_text(re.compile(r"^iteration 0 · loss"))  # drawn on the next animation frame
    assert view1.get_by_label("Data set").input_value() == "xor"
    assert view1.locator("svg circle.neuron:not(.bias)").count() == 2 + 4 + 1
    assert not view1.get_by_role("button", name="Copy link").is_visible()  # no URL in a notebook
    n = len(sent())
    view1.get_by_role("button", name="Step", exact=True).click()
    page.wait_for_function("() => document.querySelector('#view1').layerprop.iteration === 1")
    new = sent()[n:]
    assert [(m["type"], m.get("iterations")) for m in new] == [("train", 1)]
    assert new[0]["view"] in views
    expect(status).to_have_text(re.compile(r"^iteration 1 · loss"))
    # the other view shows the same session
    page.wait_for_function("() => document.querySelector('#view2').layerprop.iteration === 1")
    assert w.session.iteration == 1
    # the example walk in view 1 only
    view1.get_by_role("button", name="Step through example").click()
    page.wait_for_function("() => document.querySelector('#view1').layerprop.walkStep === 0")
    assert sent()[-1]["type"] == "walk"
    assert page.evaluate("() => document.querySelector('#view2').layerprop.walkStep") is None
    # a bad setting: the alert in that view
    view1.get_by_label("Hidden layers (neurons, comma separated)").fill("1000000")
    view1.get_by_label("Hidden layers (neurons, comma separated)").press("Tab")
    expect(view1.get_by_role("alert")).to_contain_text("1024")
    assert page.locator("#view2").locator("#alert").text_content() == ""  # not its error
    # removing the views stops listening
    page.evaluate("() => window.cleanups.forEach((f) => f())")
    assert page.evaluate("() => window.fake.handlers['msg:custom'].length") == 0
    assert errors == [], errors
    assert all(u.startswith("http://widget.test/") for u in requests), requests
    page.close()
    w.close()
