"""The playground in a real browser: Debian's chromium driven by Playwright for Python.

Skipped when Playwright or /usr/bin/chromium is missing (``scripts/install_chromium.sh``
installs chromium; ``pip install playwright`` the driver; no browser is downloaded).
"""

import os
import re
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")
CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing (scripts/install_chromium.sh installs it)", allow_module_level=True)

import layerprop as lp  # noqa: E402
from layerprop import io as lp_io  # noqa: E402
from layerprop.playground.server import create_app  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL = {"127.0.0.1", "localhost"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url():
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            pytest.fail("the playground server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as p:
        # Playwright gives every launch a fresh profile (a new temporary user data dir)
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, base_url):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = ctx.new_page()
    page.errors, page.requests = [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("websocket", lambda w: page.requests.append(w.url))
    page.goto(base_url)
    page.wait_for_function("() => window.layerprop && window.layerprop.updates > 0")
    yield page
    hosts = {urlsplit(u).hostname for u in page.requests if not u.startswith(("blob:", "data:"))}
    assert hosts <= LOCAL, f"requests left localhost: {sorted(hosts - LOCAL)}"
    assert page.errors == [], page.errors
    ctx.close()


def status_loss(page):
    text = page.get_by_role("status").inner_text()
    m = re.search(r"iteration (\d+) · loss ([0-9.e+-]+)", text)
    assert m, text
    return int(m.group(1)), float(m.group(2))


def test_play_until_the_loss_falls_then_walk_an_example(page):
    page.get_by_label("Data set").select_option("circle")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('iteration 0')")
    page.get_by_label("Data set").select_option("xor")
    page.wait_for_function("() => location.hash.includes('dataset=xor')")
    _, loss0 = status_loss(page)
    page.get_by_role("button", name="Play", exact=True).click()
    page.wait_for_function("() => window.layerprop.iteration >= 1500", timeout=20000)
    page.get_by_role("button", name="Pause", exact=True).click()
    page.wait_for_function("() => !window.layerprop.playing")
    time.sleep(0.2)
    i, loss = status_loss(page)
    assert i >= 1500 and loss < 0.7 * loss0
    # Step is one SGD iteration
    page.get_by_role("button", name="Step", exact=True).click()
    page.wait_for_function(f"() => window.layerprop.iteration === {i + 1}")
    # the example walk: forward, loss, backward, gradient, update, gradient check
    page.get_by_label("Training row").fill("5")
    page.get_by_role("button", name="Step through example").click()
    page.wait_for_function("() => window.layerprop.walkStep === 0")
    titles = []
    nxt = page.get_by_role("button", name="Next", exact=True)
    while nxt.is_enabled():
        step = page.evaluate("() => window.layerprop.walkStep")
        nxt.focus()
        page.keyboard.press("Enter")  # keyboard operable
        page.wait_for_function(f"() => window.layerprop.walkStep === {step + 1}")
        titles.append(page.locator("#walk_title").inner_text())
    assert any("Forward" in t for t in titles) and any("Backward" in t for t in titles)
    assert "gradcheck ok" in page.locator("#walk_lines").inner_text()
    assert page.evaluate("() => window.layerprop.lastWalkMs") < 1000
    assert page.locator("#netsvg .edge.hl").count() == 0  # the last step highlights no edge


def test_upload_good_and_bad_csv(page, tmp_path):
    good = tmp_path / "points.csv"
    good.write_text("u,v,w,kind\n" + "".join(f"{i % 5},{(i * 7) % 11},{i % 3},{'a' if i % 2 else 'b'}\n"
                                             for i in range(80)))
    bad = tmp_path / "broken.csv"
    bad.write_text("u,v,kind\n1,2,a\n3,oops,b\n")
    page.get_by_label("Upload CSV").set_input_files(str(good))
    page.wait_for_function("() => document.querySelector('#data-summary').textContent.startsWith('points.csv')")
    assert page.get_by_label("Data set").input_value() == "upload:points.csv"
    assert page.locator("#netsvg circle.neuron").count() >= 3
    page.get_by_label("Upload CSV").set_input_files(str(bad))
    alert = page.get_by_role("alert")
    sync_api.expect(alert).to_contain_text("broken.csv")
    sync_api.expect(alert).to_contain_text("oops")
    # the previous data set is still loaded and trains
    page.get_by_role("button", name="Step", exact=True).click()
    page.wait_for_function("() => window.layerprop.iteration === 1")


def test_export_model_loads_with_lp_load(page, tmp_path):
    page.get_by_role("button", name="Step", exact=True).click()
    page.wait_for_function("() => window.layerprop.iteration === 1")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Export model").click()
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    net = getattr(lp, "load", lp_io.load)(path)
    assert net.k == (2, 8, 8, 1)
    assert net.info["playground"]["iteration"] == 1


def test_absurd_setting_shows_an_alert_and_the_page_keeps_working(page):
    page.get_by_label("Hidden layers (neurons, comma separated)").fill("1000000")
    page.keyboard.press("Tab")
    sync_api.expect(page.get_by_role("alert")).to_contain_text("1024")
    assert page.get_by_label("Hidden layers (neurons, comma separated)").input_value() == "8,8"
    page.get_by_role("button", name="Reset").click()
    page.get_by_role("button", name="Step", exact=True).click()
    page.wait_for_function("() => window.layerprop.iteration === 1")
    sync_api.expect(page.locator("#alert")).to_have_text("")  # the error is cleared


def test_the_link_reproduces_the_configuration(page, base_url):
    page.goto("about:blank")
    page.goto(base_url + "#dataset=circle&hidden=3,2&activations=relu,tanh&eta=0.05&phantom=0.1.0")
    page.wait_for_function("() => window.layerprop.updates > 0 && document.querySelector('#hidden').value === '3,2'")
    assert page.get_by_label("Data set").input_value() == "circle"
    assert page.locator("#netsvg line.edge.phantom").count() == 1
    assert page.get_by_label("Layer 1 activation").input_value() == "relu"
