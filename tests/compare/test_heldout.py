"""Held-out log-likelihoods on the data scale against dense multivariate normals."""

import arviz as az
import numpy as np
import pytest
from scipy import stats

from vagg_bayes.bayes.diagnostics import Diagnostics
from vagg_bayes.bayes.fit import EquationFit
from vagg_bayes.bayes.priors import default_priors
from vagg_bayes.compare.loo import group_loglik, row_loglik
from vagg_bayes.equations import equation_designs
from vagg_bayes.spec import Spec


def _fake(design, *, nested, C=1, D=6, seed=0):
    rng = np.random.default_rng(seed)
    beta = rng.normal(0.2, 0.3, size=(C, D, design.p))
    sigma = 0.7 + 0.1 * rng.random((C, D))
    q = len(design.varying)
    sd = 0.2 + 0.3 * rng.random((C, D, q))
    corr = rng.uniform(-0.6, 0.6, (C, D)) if q == 2 else None
    u = rng.normal(size=(C, D, design.n_groups, q))
    post = {"beta": beta}
    if nested:
        post.update(sd_unit=0.3 + 0.2 * rng.random((C, D)),
                    sd_cell=0.2 + 0.2 * rng.random((C, D)))
    idata = az.from_dict(posterior=post, dims={"beta": ["term"]},
                         coords={"term": list(design.terms)})
    fit = EquationFit(design, "gaussian", default_priors(design, "gaussian"), beta, sigma, sd,
                      corr, u, idata, Diagnostics(0, 1.0, 1e3, 1e3), 0.0)
    return fit, {k: np.asarray(v).reshape(C * D) for k, v in post.items() if k != "beta"}


def _dense(design, fit, extra, j, d):
    rows = design.group_codes == j
    X, y = design.X[rows], design.y[rows]
    beta = fit.beta.reshape(-1, design.p)[d]
    cov = fit.sigma.reshape(-1)[d] ** 2 * np.eye(rows.sum())
    W = X[:, list(design.varying)]
    sd = fit.group_sd.reshape(-1, W.shape[1])[d]
    R = np.eye(W.shape[1])
    if W.shape[1] == 2:
        R[0, 1] = R[1, 0] = fit.group_corr.reshape(-1)[d]
    cov += W @ (sd[:, None] * R * sd[None]) @ W.T
    if extra:
        unit = design.unit_codes[rows]
        cell = design.time_codes[rows]
        cov += extra["sd_unit"][d] ** 2 * (unit[:, None] == unit[None])
        cov += extra["sd_cell"][d] ** 2 * (cell[:, None] == cell[None])
    return stats.multivariate_normal.logpdf(y, X @ beta, cov)


@pytest.mark.parametrize("nested", [False, True])
def test_group_loglik_equals_the_dense_marginal(panel_factory, nested):
    data = panel_factory(n_units=60, n_waves=3, n_schools=5)
    spec = Spec(outcome="score", treatment="dose", controls=("size", "kind"), group="school",
                varying_slope=True, **({"unit": "pupil", "time": "wave"} if nested else {}))
    design = equation_designs(data, spec)[0]["outcome"]
    assert design.nested is nested
    fit, extra = _fake(design, nested=nested)
    ll = group_loglik(fit, design)
    for j in (0, 3):
        for d in (0, 4):
            assert ll[d, j] == pytest.approx(_dense(design, fit, extra, j, d), rel=1e-9)


def test_row_loglik_uses_seen_groups_and_draws_new_ones(panel_factory):
    data = panel_factory(n_units=60, n_waves=1, n_schools=5)
    spec = Spec(outcome="score", treatment="dose", group="school")
    design = equation_designs(data, spec)[0]["outcome"]
    fit, _ = _fake(design, nested=False)
    held = equation_designs(data[data.school == 2], spec, reference={"outcome": design})[0]
    ll = row_loglik(fit, held["outcome"], np.random.default_rng(0))
    beta = fit.beta.reshape(-1, design.p)
    u = fit.group_effects.reshape(beta.shape[0], design.n_groups, 1)[:, 2, 0]
    mu = beta @ held["outcome"].X.T + u[:, None]
    expected = stats.norm.logpdf(held["outcome"].y, mu, fit.sigma.reshape(-1, 1))
    np.testing.assert_allclose(ll, expected, rtol=1e-10)
