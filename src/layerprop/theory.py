"""What chapter 20 says about a network of this architecture: |V|, |E|, depth, VC-dimension bounds.

The bounds are orders of growth (constants unknown); the numbers given are the bare expressions
evaluated for this network, so that architectures can be compared, not sample sizes to trust.
"""

from __future__ import annotations

import math


def network_facts(net_or_graph, bits: int = 32) -> dict:
    """|V|, |E| (with and without bias edges), depth T, sizes, and the chapter's bounds (SSBD 20.3-20.5)."""
    g = getattr(net_or_graph, "graph", net_or_graph)
    E = g.num_edges()
    V = g.num_vertices
    acts = getattr(net_or_graph, "activation_names", None)
    return {
        "sizes": list(g.sizes),
        "depth": g.T,
        "num_vertices": V,
        "num_edges": E,
        "num_edges_without_bias": g.num_edges(include_bias=False),
        "edges_per_layer": [int(m.sum()) for m in g.masks],
        "bias_edges_per_layer": None if not g.bias else [int(m.sum()) for m in g.bias_masks],
        "activations": None if acts is None else list(acts),
        "vc_sign": {"bound": "O(|E| log |E|)", "value": E * math.log2(max(E, 2))},
        "vc_sigmoid": {"lower": "Omega(|E|^2)", "lower_value": E ** 2,
                       "upper": "O(|V|^2 |E|^2)", "upper_value": V ** 2 * E ** 2},
        "finite_precision": {"bits_per_weight": bits, "log2_class_size_at_most": bits * E,
                             "note": f"with {bits}-bit weights |H| <= 2^({bits}|E|), so on the order of "
                                     f"{bits}|E| = {bits * E} examples suffice (SSBD 20.4)"},
    }
