"""The Laplace per-group marginal of a logit model with group-time effects against
brute-force quadrature over the group and cell effects."""

import itertools

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.design import build_design
from vagg_bayes.bayes.loglik_cells import bernoulli_cell_group_loglik
from vagg_bayes.spec import Spec


def _data(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(3):
        for t in range(2):
            n = int(rng.integers(6, 13))
            rows.append(pd.DataFrame({"ville": f"v{j}", "année": t,
                                      "dose": rng.normal(size=n)}))
    df = pd.concat(rows, ignore_index=True)
    g = df["ville"].str[1].astype(int).to_numpy()
    eta = (-0.3 + 0.8 * df["dose"] + 0.6 * rng.normal(size=3)[g]
           + 0.5 * rng.normal(size=(3, 2))[g, df["année"]])
    df["réussite"] = (rng.random(len(df)) < 1 / (1 + np.exp(-eta))).astype(int)
    return df


def _brute(design, beta, sd, corr, s, nodes):
    """Gauss-Hermite (probabilists') tensor rule over the whitened (v, z) of each group."""
    z, wts = np.polynomial.hermite_e.hermegauss(nodes)
    wts = wts / np.sqrt(2 * np.pi)
    q = len(design.varying)
    T = int(design.time_codes.max()) + 1
    L = np.diag(sd) if q == 1 else np.array([[sd[0], 0], [sd[1] * corr,
                                                            sd[1] * np.sqrt(1 - corr**2)]])
    out = np.zeros(design.n_groups)
    W = design.X[:, list(design.varying)]
    for j in range(design.n_groups):
        rows = design.group_codes == j
        X, y, Wj, tj = design.X[rows], design.y[rows], W[rows], design.time_codes[rows]
        total = 0.0
        for idx in itertools.product(range(nodes), repeat=q + T):
            point = z[list(idx)]
            weight = np.prod(wts[list(idx)])
            u = L @ point[:q]
            eta = X @ beta + Wj @ u + s * point[q:][tj]
            total += weight * np.exp(np.sum(y * eta - np.logaddexp(0, eta)))
        out[j] = np.log(total)
    return out


@pytest.mark.parametrize("varying_slope", [False, True])
def test_laplace_marginal_is_close_to_brute_force_quadrature(varying_slope):
    df = _data()
    spec = Spec(outcome="réussite", treatment="dose", group="ville", time="année",
                varying_slope=varying_slope, family="bernoulli")
    design = build_design(df, spec, group_time=True)
    q = len(design.varying)
    rng = np.random.default_rng(4)
    D = 3
    beta = rng.normal(0.0, 0.3, (D, design.p))  # intercept, dose, period indicator
    beta[:, 1] += 0.8
    sd = rng.uniform(0.3, 1.0, (D, q))
    corr = rng.uniform(-0.5, 0.5, D) if q == 2 else None
    s = rng.uniform(0.2, 0.8, D)
    laplace = bernoulli_cell_group_loglik(design, beta, sd, corr, s)
    assert laplace.shape == (D, 3)
    nodes = 24 if q == 1 else 12
    for d in range(D):
        exact = _brute(design, beta[d], sd[d], None if corr is None else corr[d], s[d], nodes)
        # Laplace on cells of 6-12 rows: measured errors up to 0.02 (intercepts) and 0.048
        # (varying slope) over three data sets
        np.testing.assert_allclose(laplace[d], exact, atol=0.03 if q == 1 else 0.06)
        # and it is not the likelihood at zero effects (the integral matters)
        at_zero = np.array([np.sum(design.y[m] * (eta := design.X[m] @ beta[d])
                                   - np.logaddexp(0, eta))
                            for m in (design.group_codes == j for j in range(3))])
        assert np.abs(exact - at_zero).max() > 0.05


def test_without_cell_variation_it_is_the_group_marginal():
    """sd_cell -> 0: the value tends to the group-only marginal (adaptive Gauss-Hermite)."""
    from vagg_bayes.bayes.loglik import bernoulli_group_loglik

    df = _data(1)
    spec = Spec(outcome="réussite", treatment="dose", group="ville", time="année",
                family="bernoulli")
    design = build_design(df, spec, group_time=True)
    beta = np.array([[-0.3, 0.8] + [0.1] * (design.p - 2)])
    sd = np.array([[0.7]])
    cells = bernoulli_cell_group_loglik(design, beta, sd, None, np.array([1e-6]))
    groups = bernoulli_group_loglik(design, beta, sd, nodes=1)  # Laplace, the same rule
    np.testing.assert_allclose(cells, groups, atol=1e-8)
