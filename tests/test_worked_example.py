"""One example worked by hand: a 2-2-1 network, backpropagation and one SGD step."""

import numpy as np

import layerprop as lp


def test_two_two_one_by_hand():
    # sigmoid hidden layer, identity output, squared loss, no bias
    g = lp.LayeredGraph.dense([2, 2, 1], bias=False)
    net = lp.Network(g, activation="sigmoid", output_activation="identity", loss="squared")
    net.W[0] = [[1.0, -1.0], [2.0, -2.0]]
    net.W[1] = [[1.0, 3.0]]
    x, y = np.array([1.0, 1.0]), np.array([1.0])

    gr = net.backprop(x, y)
    tr = gr.trace
    # a_1 = W_0 x = (1 - 1, 2 - 2) = (0, 0);  o_1 = sigma(0) = (0.5, 0.5)
    np.testing.assert_array_equal(tr.o[1][0], [0.5, 0.5])
    # a_2 = W_1 o_1 = 0.5 + 1.5 = 2;  o_2 = a_2 = 2 (identity)
    assert tr.o[2][0, 0] == 2.0
    # l = 1/2 (2 - 1)^2 = 0.5
    assert gr.loss == 0.5
    # delta_2 = o_2 - y = 1
    np.testing.assert_array_equal(gr.delta[2], [1.0])
    # grad W_1 = delta_2 sigma'(a_2) o_1 = 1 * 1 * (0.5, 0.5)
    np.testing.assert_array_equal(gr.W[1], [[0.5, 0.5]])
    # delta_1 = W_1^T (delta_2 * sigma'(a_2)) = (1, 3)
    np.testing.assert_array_equal(gr.delta[1], [1.0, 3.0])
    # grad W_0[i, j] = delta_{1,i} sigma'(a_{1,i}) o_{0,j} = delta_{1,i} * 0.25 * 1
    np.testing.assert_array_equal(gr.W[0], [[0.25, 0.25], [0.75, 0.75]])

    # one step of the book's SGD: w <- w - eta (v + lambda w), eta = 0.1, lambda = 0.1
    eta, lam = 0.1, 0.1
    W1 = net.W[1] - eta * (gr.W[1] + lam * net.W[1])
    # 1 - 0.1 (0.5 + 0.1) = 0.94;  3 - 0.1 (0.5 + 0.3) = 2.92
    np.testing.assert_allclose(W1, [[0.94, 2.92]], rtol=1e-15)
    W0 = net.W[0] - eta * (gr.W[0] + lam * net.W[0])
    # 1 - 0.1 (0.25 + 0.1) = 0.965;  -1 - 0.1 (0.25 - 0.1) = -1.015;  2 - 0.1 (0.75 + 0.2) = 1.905;  -2 - 0.1 (0.75 - 0.2) = -2.055
    np.testing.assert_allclose(W0, [[0.965, -1.015], [1.905, -2.055]], rtol=1e-15)
