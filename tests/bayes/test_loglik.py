"""Per-group marginal and per-row conditional log-likelihoods against brute force."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import expit

import vagg_bayes.bayes.loglik as loglik
from vagg_bayes.bayes.design import build_design
from vagg_bayes.bayes.loglik import (
    bernoulli_group_loglik,
    bernoulli_row_loglik,
    gaussian_row_loglik,
)
from vagg_bayes.spec import Spec

# group sizes: a single row, all ones, all zeros, and larger mixed groups
SIZES = (1, 4, 3, 7, 12, 35, 60)
ALL_ONES, ALL_ZEROS = 1, 2


def _frame(sizes=SIZES, seed=0, binary=True):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(len(sizes)), sizes)
    n = len(g)
    x = rng.normal(size=n) + 0.3 * rng.normal(size=len(sizes))[g]
    z = rng.normal(size=n)
    if binary:
        y = (rng.random(n) < expit(0.2 + 0.6 * x - 0.4 * z)).astype(float)
        y[g == ALL_ONES], y[g == ALL_ZEROS] = 1.0, 0.0
    else:
        y = 1.0 + 0.5 * x + rng.normal(size=n)
    # group labels that do not sort like their codes
    return pd.DataFrame({"y": y, "x": x, "z": z, "g": np.array([f"c{9 - k}" for k in g])})


def _design(slope, **kw):
    spec = Spec(outcome="y", treatment="x", controls=("z",), group="g", varying_slope=slope)
    return build_design(_frame(**kw), spec)


def _log_integrand(design, beta, L, j):
    """``v -> log prod_i p(y_ij | u = L v) + log N(v; 0, I)`` for ``v`` (..., q)."""
    rows = design.group_codes == j
    X, y = design.X[rows], design.y[rows]
    W = X[:, list(design.varying)]
    o = X @ beta

    def f(v):
        eta = o + (v @ L.T) @ W.T
        softplus = np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))
        ll = (y * eta - softplus).sum(-1)
        return ll + stats.norm.logpdf(v).sum(-1)

    return f


def _brute_q1(design, beta, sd, j):
    f = _log_integrand(design, beta, np.array([[sd]]), j)
    grid = np.linspace(-15, 15, 6001)
    lf = f(grid[:, None])
    top = lf.max()
    val, _ = integrate.quad(lambda v: np.exp(f(np.array([[v]]))[0] - top), -15, 15,
                            points=[grid[lf.argmax()]], epsabs=0, epsrel=1e-12, limit=500)
    return top + np.log(val)


def _brute_q2(design, beta, sd, corr, j):
    S = np.diag(sd**2)
    S[0, 1] = S[1, 0] = corr * sd[0] * sd[1]
    f = _log_integrand(design, beta, np.linalg.cholesky(S), j)
    grid = np.linspace(-8, 8, 301)
    h = grid[1] - grid[0]
    lf = f(np.stack(np.meshgrid(grid, grid, indexing="ij"), -1))
    top = lf.max()
    return top + np.log(np.exp(lf - top).sum() * h * h)


def _conditional_group_loglik(design, beta, u):
    """``sum_i log p(y_ij | beta, u_j)`` per group, row by row with scipy."""
    eta = design.X @ beta
    for a, col in enumerate(design.varying):
        eta = eta + u[design.group_codes, a] * design.X[:, col]
    ll = stats.bernoulli.logpmf(design.y, expit(eta))
    return np.bincount(design.group_codes, weights=ll, minlength=design.n_groups)


# --------------------------------------------------------------------------- marginal


def test_q1_matches_brute_force_quadrature():
    d = _design(False)
    assert d.varying == (0,)
    rng = np.random.default_rng(1)
    sd = np.array([[0.5], [1e-6], [1.2], [1.5]])
    beta = rng.normal(scale=0.7, size=(len(sd), d.p))
    ll = bernoulli_group_loglik(d, beta, sd)
    assert ll.shape == (len(sd), d.n_groups)
    ref = np.array([[_brute_q1(d, beta[k], sd[k, 0], j) for j in range(d.n_groups)]
                    for k in range(len(sd))])
    np.testing.assert_allclose(ll, ref, rtol=0, atol=1e-6)


def test_q2_matches_fine_grid():
    d = _design(True)
    assert d.varying == (0, 1)
    rng = np.random.default_rng(2)
    sd = np.array([[0.8, 0.4], [1e-6, 0.7], [0.9, 1e-6], [0.6, 0.5]])
    corr = np.array([0.3, -0.5, 0.2, -0.95])
    beta = rng.normal(scale=0.6, size=(len(sd), d.p))
    ll = bernoulli_group_loglik(d, beta, sd, corr)
    ref = np.array([[_brute_q2(d, beta[k], sd[k], corr[k], j) for j in range(d.n_groups)]
                    for k in range(len(sd))])
    np.testing.assert_allclose(ll, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("slope", [False, True])
def test_zero_sd_is_the_likelihood_at_zero_effects(slope):
    d = _design(slope)
    q = len(d.varying)
    rng = np.random.default_rng(3)
    beta = rng.normal(size=(3, d.p))
    sd = np.array([[0.0] * q, [1e-12] * q, [0.0] * q])
    corr = np.array([0.0, 1.0, -1.0])  # a singular S is allowed
    ll = bernoulli_group_loglik(d, beta, sd, corr if slope else None, nodes=7)
    for k in range(3):
        ref = _conditional_group_loglik(d, beta[k], np.zeros((d.n_groups, q)))
        np.testing.assert_allclose(ll[k], ref, rtol=0, atol=1e-9)


def test_laplace_is_one_node_and_close_on_large_groups():
    for slope in (False, True):
        d = _design(slope, seed=4)
        q = len(d.varying)
        rng = np.random.default_rng(5)
        beta = rng.normal(scale=0.5, size=(20, d.p))
        sd = rng.uniform(0.2, 1.5, size=(20, q))
        corr = rng.uniform(-0.8, 0.8, size=20) if slope else None
        exact = bernoulli_group_loglik(d, beta, sd, corr, nodes=20)
        lap = bernoulli_group_loglik(d, beta, sd, corr, laplace=True)
        np.testing.assert_array_equal(lap, bernoulli_group_loglik(d, beta, sd, corr, nodes=1))
        large = np.bincount(d.group_codes) >= 30
        assert np.abs(lap - exact)[:, large].max() < 0.05
        assert np.all(np.isfinite(lap))


def test_extreme_linear_predictor_is_stable():
    d = _design(False)
    sd = np.array([[1.0], [1.0]])
    beta = np.array([[750.0, 0.5, -0.3], [-750.0, 0.5, -0.3]])
    ll = bernoulli_group_loglik(d, beta, sd)
    assert np.all(np.isfinite(ll))
    # the mode is far in the prior's tail (v about -n_0): integrate around it
    for k in range(2):
        for j in range(d.n_groups):
            f = _log_integrand(d, beta[k], np.array([[1.0]]), j)
            grid = np.linspace(-80, 80, 16001)
            lf = f(grid[:, None])
            ref = lf.max() + np.log(np.exp(lf - lf.max()).sum() * (grid[1] - grid[0]))
            assert ll[k, j] == pytest.approx(ref, abs=1e-6)


def test_draw_axes_selection_chunks_and_workers(monkeypatch):
    d = _design(True)
    rng = np.random.default_rng(6)
    C, D = 2, 5
    beta = rng.normal(scale=0.5, size=(C, D, d.p))
    sd = rng.uniform(0.1, 1.0, size=(C, D, 2))
    corr = rng.uniform(-0.9, 0.9, size=(C, D))
    ll = bernoulli_group_loglik(d, beta, sd, corr, nodes=9)
    flat = bernoulli_group_loglik(d, beta.reshape(C * D, -1), sd.reshape(C * D, -1),
                                  corr.reshape(-1), nodes=9)
    np.testing.assert_array_equal(ll, flat)
    pick = np.array([7, 1, 3])
    np.testing.assert_allclose(
        bernoulli_group_loglik(d, beta, sd, corr, nodes=9, draws=pick), ll[pick],
        rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        bernoulli_group_loglik(d, beta, sd, corr, nodes=9, workers=3), ll, rtol=0, atol=1e-10)
    # one draw per chunk: warm starts from the previous chunk's modes
    monkeypatch.setattr(loglik, "_NEWTON_CELLS", 1)
    monkeypatch.setattr(loglik, "_NODE_CELLS", 1)
    np.testing.assert_allclose(bernoulli_group_loglik(d, beta, sd, corr, nodes=9), ll,
                               rtol=0, atol=1e-10)


def test_group_without_rows_and_bad_input():
    d = _design(False)
    labels = np.append(d.group_labels, "empty")
    d_empty = dataclasses.replace(d, group_labels=labels)
    beta = np.array([[0.1, 0.2, 0.3]])
    ll = bernoulli_group_loglik(d_empty, beta, [[0.5]])
    assert ll.shape == (1, d.n_groups + 1) and ll[0, -1] == 0.0
    np.testing.assert_allclose(ll[:, :-1], bernoulli_group_loglik(d, beta, [[0.5]]))
    with pytest.raises(ValueError, match="q = 1"):
        bernoulli_group_loglik(d, beta, [[0.5, 0.5]])
    with pytest.raises(ValueError, match="non-negative"):
        bernoulli_group_loglik(d, beta, [[-0.5]])
    no_group = build_design(_frame(), Spec(outcome="y", treatment="x"))
    with pytest.raises(ValueError, match="group"):
        bernoulli_group_loglik(no_group, beta[:, :2], [[0.5]])
    gaussian = _design(False, binary=False)
    with pytest.raises(ValueError, match="0 or 1"):
        bernoulli_group_loglik(gaussian, beta, [[0.5]])


# --------------------------------------------------------------------------- per row


@pytest.mark.parametrize("slope", [False, True])
def test_bernoulli_rows_sum_to_the_conditional_group_loglik(slope):
    d = _design(slope)
    q = len(d.varying)
    rng = np.random.default_rng(7)
    C, D = 2, 3
    beta = rng.normal(size=(C, D, d.p))
    u = rng.normal(size=(C, D, d.n_groups, q))
    rows = bernoulli_row_loglik(d, beta, u)
    assert rows.shape == (C * D, d.n)
    for k in range(C * D):
        b, uk = beta.reshape(C * D, -1)[k], u.reshape(C * D, d.n_groups, q)[k]
        sums = np.bincount(d.group_codes, weights=rows[k], minlength=d.n_groups)
        np.testing.assert_allclose(sums, _conditional_group_loglik(d, b, uk), atol=1e-10)
    # no group effects: the population-level predictor alone
    plain = bernoulli_row_loglik(d, beta)
    eta = beta.reshape(C * D, -1) @ d.X.T
    np.testing.assert_allclose(plain, stats.bernoulli.logpmf(d.y, expit(eta)), atol=1e-12)


def test_bernoulli_rows_stable_for_large_eta():
    d = _design(False)
    out = bernoulli_row_loglik(d, np.array([[800.0, 0.0, 0.0], [-800.0, 0.0, 0.0]]))
    np.testing.assert_allclose(out[0], np.where(d.y == 1, 0.0, -800.0), atol=1e-12)
    np.testing.assert_allclose(out[1], np.where(d.y == 1, -800.0, 0.0), atol=1e-12)


@pytest.mark.parametrize("slope", [False, True])
def test_gaussian_rows_match_scipy(slope):
    d = _design(slope, binary=False)
    q = len(d.varying)
    rng = np.random.default_rng(8)
    beta = rng.normal(size=(4, d.p))
    sigma = rng.uniform(0.5, 2.0, size=4)
    u = rng.normal(size=(4, d.n_groups, q))
    out = gaussian_row_loglik(d, beta, sigma, u)
    for k in range(4):
        eta = d.X @ beta[k]
        for a, col in enumerate(d.varying):
            eta = eta + u[k, d.group_codes, a] * d.X[:, col]
        np.testing.assert_allclose(out[k], stats.norm.logpdf(d.y, eta, sigma[k]), atol=1e-12)
    np.testing.assert_allclose(gaussian_row_loglik(d, beta, sigma),
                               stats.norm.logpdf(d.y, beta @ d.X.T, sigma[:, None]), atol=1e-12)
    with pytest.raises(ValueError, match="draws"):
        gaussian_row_loglik(d, beta, sigma[:3])
