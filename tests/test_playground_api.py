"""The playground server through Starlette's TestClient: pages, static files, the websocket
session, origin refusal, uploads, absurd settings, export/import."""

import base64
import time

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

import layerprop as lp  # noqa: E402
from layerprop import io as lp_io  # noqa: E402
from layerprop.playground import server as pg_server  # noqa: E402
from layerprop.playground.server import create_app  # noqa: E402
from layerprop.playground.session import MAX_UPLOAD_BYTES, Session, check_config  # noqa: E402

ORIGIN = {"origin": "http://testserver"}
SMALL = {"dataset": "xor", "n_samples": 200, "hidden": [4], "activations": ["tanh"], "eta": 0.3}


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(allowed_hosts=("127.0.0.1", "localhost", "testserver")))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class WS:
    """A websocket session: ``ask`` sends one message and returns its replies."""

    def __init__(self, conn):
        self.conn = conn

    def ask(self, msg, replies=1):
        self.conn.send_json(msg)
        return [self.conn.receive_json() for _ in range(replies)]

    def one(self, msg):
        return self.ask(msg)[0]


@pytest.fixture
def ws(client):
    with client.websocket_connect("/ws", headers=ORIGIN) as conn:
        yield WS(conn)


# -- pages and static files ----------------------------------------------------------------------
def test_index_has_the_names_the_issue_lists(client):
    r = client.get("/")
    assert r.status_code == 200
    html = r.text
    for name in (">Play<", ">Pause<", ">Step<", ">Reset<", ">Export model<", ">Step through example<",
                 ">Data set<", ">Upload CSV<", 'role="status"', 'role="alert"'):
        assert name in html, name
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "http" not in html.replace('http-equiv', '')  # no CDN, no external URL


@pytest.mark.parametrize("path", ["app.js", "style.css", "index.html"])
def test_static_files_are_served(client, path):
    r = client.get(f"/static/{path}")
    assert r.status_code == 200 and len(r.content) > 100
    assert r.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", [
    "/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fsession.py", "/static/%2e%2e%2f__init__.py",
    "/static/../../../../../../etc/passwd", "/static//etc/passwd", "/static/%2Fetc%2Fpasswd",
    "/static/nothing.js", "/static/", "/server.py", "/static/%2e%2e", "/static/.%00./server.py",
])
def test_path_outside_the_static_folder_is_404(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "import" not in r.text


def test_foreign_host_header_is_refused(client):
    # DNS rebinding: a page at evil.example resolving to 127.0.0.1 sends Host: evil.example
    assert client.get("/", headers={"host": "evil.example:8765"}).status_code == 400
    assert client.get("/", headers={"host": "127.0.0.1:8765"}).status_code == 200


# -- the websocket -------------------------------------------------------------------------------
@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1.evil.example", "null",
                                    "https://testserver", "http://testserver:9999", "file://"])
def test_websocket_refuses_other_origins(client, origin):
    with pytest.raises(WebSocketDisconnect) as e:
        with client.websocket_connect("/ws", headers={"origin": origin}) as conn:
            conn.receive_text()
    assert e.value.code == 1008


def test_websocket_refuses_a_foreign_host(client):
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws", headers={"origin": "http://evil.example", "host": "evil.example"}) as c:
            c.receive_text()


def test_hello_configure_train_loss_falls(ws):
    opts = ws.one({"type": "hello"})
    assert opts["type"] == "options" and {"xor", "circle"} <= set(opts["toy"])
    state = ws.one({"type": "configure", "config": SMALL})
    assert state["type"] == "state"
    assert state["network"]["sizes"] == [2, 4, 1]
    assert state["data"]["n_train"] + state["data"]["n_test"] == 200
    loss0 = state["update"]["metrics"]["loss"]
    for _ in range(30):
        u = ws.one({"type": "train", "iterations": 20})
    assert u["type"] == "update" and u["iteration"] == 600
    assert u["metrics"]["loss"] < loss0
    assert len(u["heatmap"]["values"]) == state["data"]["grid"] ** 2
    assert u["best"]["iteration"] > 0


def test_training_matches_the_library(ws):
    """The session's steps are the book's SGD through the library: same numbers as lp.sgd."""
    ws.one({"type": "configure", "config": {**SMALL, "batch_size": 1, "eval_every": 1000}})
    session_replies = ws.one({"type": "train", "iterations": 50})
    s = Session()
    s.handle({"type": "configure", "config": {**SMALL, "batch_size": 1, "eval_every": 1000}})
    net0 = s.net.copy()
    s.handle({"type": "train", "iterations": 50})
    res = lp.sgd(net0, s.Xtr, s.Ytr, iterations=50, step_size=0.3, batch_size=1, seed=0, engine="numpy",
                 output="last")
    np.testing.assert_allclose(res.network.W[0], s.net.W[0], rtol=1e-10, atol=1e-12)
    assert session_replies["iteration"] == 50
    s.close()


def test_walk_steps_and_speed(ws):
    ws.one({"type": "configure", "config": {"dataset": "xor", "hidden": [8, 8]}})
    first = ws.one({"type": "walk", "row": 3, "step": 0})
    assert first["type"] == "walk" and first["steps"] >= 8
    phases = [first["phase"]]
    for k in range(1, first["steps"]):
        t0 = time.perf_counter()
        m = ws.one({"type": "walk", "row": 3, "step": k})
        assert time.perf_counter() - t0 < 0.5
        phases.append(m["phase"])
    assert phases[0] == "input" and phases[-1] == "gradcheck"
    assert {"forward", "loss", "backward", "gradient", "update"} <= set(phases)
    assert "gradcheck ok" in m["lines"][0]


def test_neuron_heatmap_and_toggle_edge(ws):
    ws.one({"type": "configure", "config": SMALL})
    n = ws.one({"type": "neuron", "t": 1, "i": 2})
    assert n["type"] == "neuron" and len(n["grid"]) > 100
    net_msg, upd = ws.ask({"type": "toggle_edge", "t": 0, "i": 1, "j": 0}, replies=2)
    assert net_msg["type"] == "network" and net_msg["masks"][0][1][0] == 0
    assert net_msg["config"]["phantom"] == [[0, 1, 0]]
    assert net_msg["facts"]["E"] == 2 * 4 + 4 + 4 + 1 - 1
    u = ws.one({"type": "train", "iterations": 50})
    assert u["weights"][0]["W"][1][0] == 0.0  # a phantom weight stays exactly 0
    back, _ = ws.ask({"type": "toggle_edge", "t": 0, "i": 1, "j": 0}, replies=2)
    assert back["masks"][0][1][0] == 1 and back["config"]["phantom"] == []


def test_random_sparsity(ws):
    ws.one({"type": "configure", "config": {**SMALL, "hidden": [8, 8]}})
    st = ws.one({"type": "sparsity", "density": 0.4, "seed": 1})
    assert st["type"] == "state" and st["config"]["density"] == 0.4
    assert st["network"]["facts"]["E_without_bias"] < 2 * 8 + 64 + 8


def test_multiclass_and_regression(ws):
    st = ws.one({"type": "configure", "config": {"dataset": "multigauss", "hidden": [8]}})
    assert st["network"]["sizes"][-1] == 5 and st["network"]["loss"] == "softmax_cross_entropy"
    assert len(st["update"]["metrics"]["confusion"]) == 5
    st = ws.one({"type": "configure", "config": {"dataset": "plane", "hidden": [4]}})
    assert st["network"]["loss"] == "squared" and "accuracy" not in st["update"]["metrics"]


# -- bad input: a message in the page, the server keeps running --------------------------------
@pytest.mark.parametrize("config, words", [
    ({"hidden": [1_000_000]}, "1 to 1024"),
    ({"hidden": "1000000,8"}, "1 to 1024"),
    ({"hidden": [1024] * 3}, "at most 1000000"),
    ({"hidden": [2] * 40}, "at most 16"),
    ({"hidden": ["eight"]}, "whole number"),
    ({"eta": -1}, "eta"),
    ({"eta": "nan"}, "eta"),
    ({"n_samples": 10**9}, "n_samples"),
    ({"activations": ["gelu"]}, "activations"),
    ({"optimizer": "lbfgs"}, "optimizer"),
    ({"dataset": "nope"}, "unknown data set"),
    ({"dataset": "plane", "head": "softmax+cross_entropy"}, "regression"),
    ({"bogus": 1}, "unknown setting"),
])
def test_absurd_settings_give_a_message(ws, config, words):
    err = ws.one({"type": "configure", "config": config})
    assert err["type"] == "error" and words in err["message"], err
    ok = ws.one({"type": "configure", "config": SMALL})
    assert ok["type"] == "state"


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '{"type": "nope"}', '{"type": "__init__"}',
                                 '{"type": "train"}', '{"type": "walk", "row": -1}'])
def test_bad_messages_give_a_message(client, raw):
    with client.websocket_connect("/ws", headers=ORIGIN) as conn:
        conn.send_text(raw)
        assert conn.receive_json()["type"] == "error"
        conn.send_json({"type": "hello"})
        assert conn.receive_json()["type"] == "options"


def test_divergence_is_reported(ws):
    ws.one({"type": "configure", "config": {**SMALL, "eta": 100, "head": "sigmoid+squared",
                                            "activations": ["identity"], "hidden": [32, 32]}})
    replies = [ws.one({"type": "train", "iterations": 200}) for _ in range(5)]
    # either it diverges (a message) or stays finite: the server answers every time
    assert all(r["type"] in ("update", "error") for r in replies)


# -- uploads ---------------------------------------------------------------------------------------
GOOD_CSV = b"a,b,c,label\n" + b"".join(
    f"{i % 7},{(i * 3) % 5},{i % 2},{'yes' if i % 3 else 'no'}\n".encode() for i in range(60))


def test_upload_csv(ws):
    st = ws.one({"type": "upload", "name": "mine.csv", "data": b64(GOOD_CSV)})
    assert st["type"] == "state", st
    assert st["data"]["name"] == "mine.csv" and st["data"]["classes"] == ["no", "yes"]
    assert st["network"]["sizes"][0] == 3 and st["config"]["dataset"] == "upload:mine.csv"
    assert st["data"]["two_d"] is False and "heatmap" not in st["update"]
    # choose another target column: 'label' becomes a feature, and the reader says why it cannot be
    err = ws.one({"type": "configure", "config": {**st["config"], "target": "c"}})
    assert err["type"] == "error" and "mine.csv" in err["message"] and "'no'" in err["message"]
    assert "/tmp" not in err["message"]  # the server's temporary folder is not shown
    st = ws.one({"type": "configure", "config": {**st["config"], "target": "label", "hidden": [3]}})
    assert st["type"] == "state", st
    u = ws.one({"type": "train", "iterations": 20})
    assert u["type"] == "update"


@pytest.mark.parametrize("name, data, words", [
    ("bad.csv", b"a,b,label\n1,2,x\n3\n", "bad.csv"),
    ("bad.csv", b"a,b,label\n1,zz,x\n3,4,y\n", "zz"),
    ("empty.csv", b"", "empty.csv"),
    ("one.csv", b"a,label\n1,x\n2,x\n", "2 classes"),
    ("model.pkl", b"\x80\x04K\x01.", "upload a .csv"),
    ("big.csv", b"a,b\n" + b"1,2\n" * (MAX_UPLOAD_BYTES // 4 + 10), "limit"),
])
def test_bad_uploads_give_the_readers_message(ws, name, data, words):
    ws.one({"type": "configure", "config": SMALL})
    err = ws.one({"type": "upload", "name": name, "data": b64(data)})
    assert err["type"] == "error" and words in err["message"], err
    assert ws.one({"type": "train", "iterations": 5})["type"] == "update"  # the old session still works


def test_upload_not_base64(ws):
    err = ws.one({"type": "upload", "name": "x.csv", "data": "%%%not base64%%%"})
    assert err["type"] == "error" and "base64" in err["message"]


# -- export and import -------------------------------------------------------------------------------
def test_export_loads_with_lp_load(ws, tmp_path):
    ws.one({"type": "configure", "config": SMALL})
    ws.one({"type": "train", "iterations": 100})
    f = ws.one({"type": "export", "format": "safetensors"})
    assert f["type"] == "file" and f["name"].endswith(".safetensors")
    path = tmp_path / f["name"]
    path.write_bytes(base64.b64decode(f["data"]))
    net = getattr(lp, "load", lp_io.load)(path)
    assert net.k == (2, 4, 1)
    info = net.info["playground"]
    assert info["features"] == ["x1", "x2"] and len(info["feature_mean"]) == 2
    # round trip into a session
    st = ws.one({"type": "import_model", "name": "m.safetensors", "data": f["data"]})
    assert st["type"] == "state" and st["network"]["sizes"] == [2, 4, 1]
    np.testing.assert_allclose(st["update"]["weights"][0]["W"], np.round(net.W[0], 4))


@pytest.mark.parametrize("data, words", [
    (b"\x80\x04\x95pickle", "safetensors"),
    (b"", ""),
    (b"PK\x03\x04zipzip", ""),
])
def test_bad_model_files_give_a_message(ws, data, words):
    ws.one({"type": "configure", "config": SMALL})
    err = ws.one({"type": "import_model", "name": "bad.safetensors", "data": b64(data)})
    assert err["type"] == "error" and words in err["message"]


def test_import_model_of_the_wrong_shape(ws, tmp_path):
    ws.one({"type": "configure", "config": SMALL})
    other = lp.Network(lp.LayeredGraph.dense([5, 3, 1]), seed=0)
    path = lp_io.save(other, tmp_path / "o.safetensors")
    err = ws.one({"type": "import_model", "name": "o.safetensors", "data": b64(path.read_bytes())})
    assert err["type"] == "error" and "5 inputs" in err["message"]


# -- configuration in the URL ---------------------------------------------------------------------------
def test_config_from_url_strings():
    cfg = check_config({"hidden": "8,4", "activations": "relu,tanh", "features": "x1,x2,x1*x2",
                        "phantom": "0.1.0;1.2.3", "bias": "false", "eta": "0.05", "n_samples": "300"})
    assert cfg["hidden"] == [8, 4] and cfg["activations"] == ["relu", "tanh"]
    assert cfg["features"] == ["x1", "x2", "x1*x2"] and cfg["phantom"] == [[0, 1, 0], [1, 2, 3]]
    assert cfg["bias"] is False and cfg["eta"] == 0.05 and cfg["n_samples"] == 300
    assert check_config(cfg) == cfg  # idempotent


# -- serve() ----------------------------------------------------------------------------------------
def test_serve_warns_on_other_hosts(monkeypatch, capsys):
    import uvicorn
    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: seen.__setitem__("config", self.config))
    pg_server.serve(host="0.0.0.0", port=8799, open_browser=False)
    assert "Warning" in capsys.readouterr().err
    pg_server.serve(host="127.0.0.1", port=8799, open_browser=False)
    assert "Warning" not in capsys.readouterr().err
    assert seen["config"].host == "127.0.0.1"


def test_cli_command_calls_serve(monkeypatch):
    from click.testing import CliRunner

    import layerprop.playground as pg
    from layerprop.cli.playground_cmd import playground_command

    calls = []
    monkeypatch.setattr(pg, "serve", lambda **kw: calls.append(kw))
    r = CliRunner().invoke(playground_command, ["--port", "9000", "--no-browser"])
    assert r.exit_code == 0, r.output
    assert calls == [{"host": "127.0.0.1", "port": 9000, "open_browser": False}]
