"""layerprop.report (HTML page, plots) and layerprop.diagram (SVG network diagram)."""

from __future__ import annotations

import re
import xml.dom.minidom

import numpy as np
import pytest

import layerprop as lp
from layerprop import report
from layerprop.diagram import network_svg


def trained_info(task="classification"):
    history = [{"iteration": i, "epoch": i / 10, "eta": 0.1, "train_loss": 1 / i, "val_loss": 1.2 / i,
                "val_metric": 1 - 1 / (i + 1), "grad_norm": 1.0, "elapsed": 0.01 * i} for i in range(1, 30)]
    metrics = {"train": {"n": 10, "accuracy": 1.0, "f1_macro": 1.0}, "best_iteration": 20}
    if task == "classification":
        metrics["test"] = {"n": 6, "accuracy": 0.5, "f1_macro": 0.5, "confusion_matrix": [[2, 1], [2, 1]],
                           "labels": ["no", "yes"]}
    else:
        metrics["test"] = {"n": 3, "r2": 0.5, "mse": 1.0, "mae": 1.0,
                           "sample": {"y_true": [1.0, 2.0, 3.0], "y_pred": [1.5, 2.0, 2.0]}}
    return {"task": task, "classes": ["no", "yes"] if task == "classification" else None,
            "feature_names": ["a", "b", "c"], "target_name": "label", "history": history, "metrics": metrics,
            "recipe": {"step_size": 0.1, "batch_size": 4}, "input_scaling": {"mean": [0, 0, 0], "scale": [1, 1, 1]}}


def net_with(task="classification"):
    net = lp.Network(lp.LayeredGraph.random([3, 5, 2 if task == "classification" else 1], 0.7, seed=2), seed=0)
    net.info = trained_info(task)
    return net


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_report_sections(task):
    pytest.importorskip("matplotlib")
    html, pngs = report.build_report(net_with(task), title="m.safetensors", want_png=True)
    for needle in ("<h1>layerprop report: m.safetensors</h1>", "Metrics", "Training and validation curves",
                   "<svg", "Recipe", "What chapter 20 says", "VC dimension"):
        assert needle in html, needle
    if task == "classification":
        assert "Confusion matrix" in html and set(pngs) == {"curves.png", "confusion.png", "weights.png"}
    else:
        assert "Residuals" in html and set(pngs) == {"curves.png", "residuals.png", "weights.png"}
    assert all(data.startswith(b"\x89PNG") for data in pngs.values())
    # self-contained: no external scripts, styles, images or fonts
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_report_without_matplotlib(monkeypatch):
    monkeypatch.setattr(report, "_plt", lambda: None)
    html, pngs = report.build_report(net_with(), want_png=True)
    assert pngs == {} and "<svg" in html and 'class="cm"' in html and "matplotlib" in html


def test_report_on_bare_network():
    net = lp.Network(lp.LayeredGraph.dense([2, 2, 1]), seed=0)
    html, _ = report.build_report(net)
    assert "No metrics recorded" in html and "<svg" in html


def test_diagram_draws_each_real_edge_once_and_no_phantom_edge():
    net = lp.Network(lp.LayeredGraph.random([4, 6, 3], 0.5, seed=3), seed=0)
    svg = network_svg(net)
    xml.dom.minidom.parseString(svg)  # well-formed
    assert svg.count("<line") - 2 == net.graph.num_edges()  # 2 legend lines
    assert svg.count("<circle") == sum(net.k)
    assert svg.count("<rect") - 1 == net.T  # one constant neuron per non-output layer (+ background)


def test_diagram_colours_by_sign():
    net = lp.Network(lp.LayeredGraph.dense([1, 1], bias=False), activation="identity", seed=0)
    net.W[0] = np.array([[-2.0]])
    assert 'stroke="#b2182b" stroke-opacity="0.940"' in network_svg(net)
    net.W[0] = np.array([[3.0]])
    assert 'stroke="#2166ac" stroke-opacity="0.940"' in network_svg(net)


def test_diagram_summarizes_large_networks():
    net = lp.Network(lp.LayeredGraph.dense([400, 300, 10]), seed=0)
    svg = network_svg(net, max_per_layer=50, max_edges=2000)
    assert svg.count("<circle") == 50 + 50 + 10
    assert svg.count("<line") - 2 <= 2000
    assert "k_0 = 400, 50 shown" in svg and "2000 drawn" in svg


def test_repr_svg_in_jupyter():
    net = lp.Network(lp.LayeredGraph.dense([2, 3, 1]), seed=0)
    assert net._repr_svg_().startswith("<svg")
