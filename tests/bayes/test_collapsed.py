"""The collapsed likelihood is exact: identities at fixed parameters, then posteriors."""

import numpy as np
import pytest
from scipy import stats as sstats

from vagg_bayes.bayes.collapsed import (
    collapsed_logp,
    draw_group_effects,
    group_loglik,
    group_statistics,
)
from vagg_bayes.bayes.design import build_design


def _dense_group_loglik(design, theta, sigma, S):
    """log N(y_j | Z_j theta, s^2 I + W_j S W_j') per group, by brute force."""
    out = []
    W_all = design.Z[:, list(design.varying)]
    for j in range(design.n_groups):
        rows = design.group_codes == j
        Zj, yj, Wj = design.Z[rows], design.y[rows], W_all[rows]
        V = sigma**2 * np.eye(rows.sum()) + Wj @ S @ Wj.T
        out.append(sstats.multivariate_normal(Zj @ theta, V).logpdf(yj))
    return np.array(out)


@pytest.mark.parametrize("varying_slope", [False, True])
def test_collapsed_logp_equals_dense_marginal(frame, spec_slope, varying_slope):
    import pytensor

    spec = spec_slope.with_(varying_slope=varying_slope)
    design = build_design(frame, spec)
    stats = group_statistics(design)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=design.p) * 0.3
    sigma = 0.9
    q = len(design.varying)
    tau = np.array([0.5, 0.3])[:q]
    corr = 0.4 if q == 2 else None
    R = np.array([[1, corr], [corr, 1]]) if q == 2 else np.eye(1)
    S = tau[:, None] * R * tau[None, :]
    dense = _dense_group_loglik(design, theta, sigma, S)

    import pytensor.tensor as pt

    th, sg, ta = pt.dvector(), pt.dscalar(), pt.dvector()
    inputs = [th, sg, ta]
    co = None
    if q == 2:
        co = pt.dscalar()
        inputs.append(co)
    f = pytensor.function(inputs, collapsed_logp(stats, th, sg, ta, co))
    args = [theta, sigma, tau] + ([corr] if q == 2 else [])
    np.testing.assert_allclose(f(*args), dense.sum(), rtol=1e-10)

    per_group = group_loglik(stats, theta[None], np.array([sigma]), tau[None],
                             None if corr is None else np.array([corr]))
    np.testing.assert_allclose(per_group[0], dense, rtol=1e-10)


def test_group_effect_draws_match_exact_conditional(frame, spec_slope):
    design = build_design(frame, spec_slope)
    stats = group_statistics(design)
    theta = np.linspace(-0.2, 0.2, design.p)
    sigma, tau, corr = 0.9, np.array([0.5, 0.3]), -0.3
    S = np.array([[0.25, corr * 0.15], [corr * 0.15, 0.09]])
    D = 4000
    u = draw_group_effects(stats, np.tile(theta, (D, 1)), np.full(D, sigma),
                           np.tile(tau, (D, 1)), np.full(D, corr),
                           rng=np.random.default_rng(1))
    W_all = design.Z[:, list(design.varying)]
    for j in (0, 5):
        rows = design.group_codes == j
        Wj = W_all[rows]
        r = design.y[rows] - design.Z[rows] @ theta
        cov = np.linalg.inv(Wj.T @ Wj / sigma**2 + np.linalg.inv(S))
        mean = cov @ Wj.T @ r / sigma**2
        draws = u[:, j]
        se = np.sqrt(np.diag(cov) / D)
        assert np.all(np.abs(draws.mean(0) - mean) < 5 * se)
        np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.1, atol=1e-4)


def test_statistics_without_group_match_full_products(frame, spec_slope):
    spec = spec_slope.with_(group=None, varying_slope=False)
    design = build_design(frame, spec)
    stats = group_statistics(design)
    np.testing.assert_allclose(stats.ZZ[0], design.Z.T @ design.Z)
    np.testing.assert_allclose(stats.Zy[0], design.Z.T @ design.y)
    assert stats.varying == ()


def _reference_collapsed_model(design, priors, stats):
    """The collapsed model written with PyMC's own distributions (no whitening)."""
    import pymc as pm

    q = len(design.varying)
    with pm.Model() as ref:
        theta = pm.Normal("theta", priors.theta_mu, priors.theta_sd, shape=design.p)
        sigma = pm.Exponential("sigma", priors.sigma_rate)
        tau = corr = None
        if q:
            tau = pm.HalfNormal("tau", priors.tau_scale, shape=q)
        if q == 2:
            corr = 2 * pm.Beta("corr_raw", priors.lkj_eta, priors.lkj_eta) - 1
        pm.Potential("ll", collapsed_logp(stats, theta, sigma, tau, corr))
    return ref


@pytest.mark.parametrize("varying_slope", [False, True])
def test_whitened_model_has_the_reference_posterior(frame, spec_slope, varying_slope):
    """``v = m + C w`` is affine: log densities differ by a constant, whatever ``w``."""
    from vagg_bayes.bayes.collapsed import build_collapsed_model
    from vagg_bayes.bayes.priors import default_priors

    design = build_design(frame, spec_slope.with_(varying_slope=varying_slope))
    priors = default_priors(design, "gaussian")
    stats = group_statistics(design)
    model = build_collapsed_model(design, priors, stats)
    assert model.whitening["converged"]
    ref = _reference_collapsed_model(design, priors, stats)
    f, f_ref = model.compile_logp(), ref.compile_logp()
    m, C = model.whitening["m"], model.whitening["C"]
    p, q = design.p, len(design.varying)
    rng = np.random.default_rng(4)
    diffs = []
    for _ in range(5):
        w = rng.normal(size=len(m))
        v = m + C @ w
        point = {"theta": v[:p], "sigma_log__": v[p]}
        if q:
            point["tau_log__"] = v[p + 1 : p + 1 + q]
        if q == 2:
            point["corr_raw_logodds__"] = v[p + 1 + q]
        diffs.append(f({"w": w}) - f_ref(point))
    np.testing.assert_allclose(diffs, diffs[0], rtol=0, atol=1e-8)


def test_laplace_whitening_finds_the_mode(frame, spec_slope):
    """At ``m`` the gradient vanishes and ``C C'`` inverts the negative Hessian."""
    from vagg_bayes.bayes.collapsed import build_collapsed_model
    from vagg_bayes.bayes.priors import default_priors

    design = build_design(frame, spec_slope)
    model = build_collapsed_model(design, default_priors(design, "gaussian"))
    dlogp = model.compile_dlogp()
    m, C = model.whitening["m"], model.whitening["C"]
    # In w-space the gradient at w = 0 is C' grad_v = 0 ...
    g0 = dlogp({"w": np.zeros(len(m))})
    assert np.max(np.abs(g0)) < 1e-4
    # ... and the Hessian is close to -I.
    h = 1e-4
    H = np.column_stack([(dlogp({"w": h * e}) - dlogp({"w": -h * e})) / (2 * h)
                         for e in np.eye(len(m))])
    np.testing.assert_allclose(H, -np.eye(len(m)), atol=1e-3)
