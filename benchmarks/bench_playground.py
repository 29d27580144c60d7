"""Playground speed (issue 10): updates per second while playing, and the example walk's latency.

The target: with a 2-8-8-1 network on 500 points (the default page: xor, 500 samples, test
fraction 0.3, hidden 8,8, batch 10, 10 iterations per update), at least 30 updates a second while
playing; each step of the example walk answers within 100 ms.

It starts ``layerprop.playground.serve`` in a subprocess on a free port and measures
1. over the websocket (the protocol the page uses): play loop updates/s and per-step walk latency;
2. in a real browser (Debian chromium + Playwright, when both are installed): the updates the page
   itself receives and draws per second while Play is on, and the walk's round trip from a click.

Usage: python benchmarks/bench_playground.py [--seconds 5] [--no-browser]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time

CHROMIUM = "/usr/bin/chromium"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port):
    code = f"from layerprop.playground import serve; serve(port={port}, open_browser=False)"
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the playground server did not start")


async def ws_bench(port, seconds):
    import websockets

    uri = f"ws://127.0.0.1:{port}/ws"
    async with websockets.connect(uri, origin=f"http://127.0.0.1:{port}", max_size=None) as ws:
        async def ask(msg):
            await ws.send(json.dumps(msg))
            return json.loads(await ws.recv())

        state = await ask({"type": "configure", "config": {"dataset": "xor", "n_samples": 500, "hidden": [8, 8]}})
        assert state["type"] == "state" and state["network"]["sizes"] == [2, 8, 8, 1], state
        for _ in range(5):  # warm up
            await ask({"type": "train"})
        lat, n, t0 = [], 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            t = time.perf_counter()
            u = await ask({"type": "train"})
            lat.append(time.perf_counter() - t)
            n += 1
        rate = n / (time.perf_counter() - t0)
        first, later = [], []
        for row in range(20):
            steps = None
            for step in range(100):
                t = time.perf_counter()
                m = await ask({"type": "walk", "row": row, "step": step})
                (first if step == 0 else later).append(time.perf_counter() - t)
                steps = m["steps"]
                if step + 1 >= steps:
                    break
        return {"updates_per_s": rate, "update_ms_median": 1000 * statistics.median(lat),
                "update_ms_p95": 1000 * sorted(lat)[int(0.95 * len(lat))],
                "iteration": u["iteration"], "loss": u["metrics"]["loss"], "walk_steps": steps,
                "walk_first_ms_median": 1000 * statistics.median(first), "walk_first_ms_max": 1000 * max(first),
                "walk_step_ms_median": 1000 * statistics.median(later), "walk_step_ms_max": 1000 * max(later)}


def browser_bench(port, seconds):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(CHROMIUM):
        return None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=flags)
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/#dataset=xor&n_samples=500&hidden=8,8")
        page.wait_for_function("() => window.layerprop && window.layerprop.updates > 0")
        page.get_by_role("button", name="Play", exact=True).click()
        time.sleep(1.0)  # warm up
        n0, t0 = page.evaluate("() => window.layerprop.updates"), time.perf_counter()
        time.sleep(seconds)
        n1, t1 = page.evaluate("() => window.layerprop.updates"), time.perf_counter()
        page.get_by_role("button", name="Pause", exact=True).click()
        page.wait_for_function("() => !window.layerprop.playing")
        walk = []
        page.get_by_role("button", name="Step through example").click()
        page.wait_for_function("() => window.layerprop.walkStep === 0")
        walk.append(page.evaluate("() => window.layerprop.lastWalkMs"))
        nxt = page.get_by_role("button", name="Next", exact=True)
        while nxt.is_enabled():
            s = page.evaluate("() => window.layerprop.walkStep")
            nxt.click()
            page.wait_for_function(f"() => window.layerprop.walkStep === {s + 1}")
            walk.append(page.evaluate("() => window.layerprop.lastWalkMs"))
        b.close()
    return {"page_updates_per_s": (n1 - n0) / (t1 - t0), "page_walk_ms_max": max(walk),
            "page_walk_ms_median": statistics.median(walk)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    port = free_port()
    proc = start_server(port)
    try:
        res = asyncio.run(ws_bench(port, args.seconds))
        if not args.no_browser:
            res.update(browser_bench(port, args.seconds) or {})
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"# playground speed ({platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}), 2-8-8-1 on xor, 500 points, 10 iterations of batch 10 per update")
    for k, v in res.items():
        print(f"{k:24s} {v:.4g}" if isinstance(v, float) else f"{k:24s} {v}")
    ok = res["updates_per_s"] >= 30 and res["walk_step_ms_max"] < 100 and res["walk_first_ms_max"] < 100
    if "page_updates_per_s" in res:
        ok = ok and res["page_updates_per_s"] >= 30 and res["page_walk_ms_max"] < 100
    print("targets (>= 30 updates/s, walk step < 100 ms):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
