"""One meaning of the pointwise log-likelihood: PSIS-LOO per group against exact refits."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp

from vagg_bayes import Analysis
from vagg_bayes.bayes.diagnostics import ConvergenceWarning
from vagg_bayes.bayes.loglik import bernoulli_group_loglik
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.data.panel import validate_panel
from vagg_bayes.equations import OUTCOME, equation_designs
from vagg_bayes.spec import Spec

SETTINGS = SamplerSettings(draws=1000, tune=600, random_seed=3)


def _data(binary: bool, n_groups: int = 8, rows: int = 25, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), rows)
    x = rng.normal(size=g.size)
    eta = 0.3 + 0.7 * x + 0.5 * rng.normal(size=n_groups)[g]
    y = (rng.random(g.size) < 1 / (1 + np.exp(-eta))).astype(int) if binary \
        else eta + 0.8 * rng.normal(size=g.size)
    return pd.DataFrame({"shop": g, "lux": x, "sales": y})


def _gaussian_group_loglik(design, fit, j):
    """Marginal log density of group j's rows under every draw, by the dense covariance."""
    rows = design.group_codes == j
    X, y = design.X[rows], design.y[rows]
    beta = fit.beta.reshape(-1, fit.beta.shape[-1])
    sigma = fit.sigma.reshape(-1)
    tau = fit.group_sd.reshape(-1)
    out = np.empty(len(sigma))
    for d in range(len(sigma)):
        cov = sigma[d] ** 2 * np.eye(rows.sum()) + tau[d] ** 2
        out[d] = stats.multivariate_normal.logpdf(y, X @ beta[d], cov)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gaussian", "bernoulli"])
def test_psis_loo_per_group_agrees_with_exact_leave_one_group_out(family):
    import arviz as az

    data = _data(family == "bernoulli")
    spec = Spec(outcome="sales", treatment="lux", group="shop", family=family)
    analysis = Analysis(spec, SETTINGS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full = analysis.fit(data)
        loo = az.loo(full.fits[OUTCOME].idata, var_name="y")
        exact = []
        for j in range(8):
            refit = analysis.refit(data[data["shop"] != j])
            fit = refit.fits[OUTCOME]
            held = validate_panel(data[data["shop"] == j], spec, new_rows=True)
            design = equation_designs(held, spec, reference={OUTCOME: fit.design})[0][OUTCOME]
            if family == "gaussian":
                ll = _gaussian_group_loglik(design, fit, 0)
            else:
                ll = bernoulli_group_loglik(design, fit.beta, fit.group_sd)[:, 0]
            exact.append(logsumexp(ll) - np.log(ll.size))
    elpd_exact = float(np.sum(exact))
    assert loo.loo_i.sizes["group"] == 8
    assert abs(loo.elpd_loo - elpd_exact) < 2 * loo.se, (loo.elpd_loo, elpd_exact, loo.se)
    # and per group, the PSIS values track the exact ones
    assert np.corrcoef(np.asarray(loo.loo_i), exact)[0, 1] > 0.9
