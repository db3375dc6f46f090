"""Fake results (no sampling) for the comparison tests: random draws, real log-likelihoods."""

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from vagg_bayes.bayes.diagnostics import Diagnostics
from vagg_bayes.bayes.fit import EquationFit
from vagg_bayes.bayes.loglik import gaussian_row_loglik
from vagg_bayes.bayes.priors import default_priors
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.compare.loo import group_loglik
from vagg_bayes.equations import equation_designs
from vagg_bayes.report.result import EstimateResult


def frame(n_groups=12, rows=15, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), rows)
    x = rng.normal(size=g.size)
    y = 0.4 + 0.6 * x + 0.5 * rng.normal(size=n_groups)[g] + 0.8 * rng.normal(size=g.size)
    return pd.DataFrame({"shop": g, "lux": x, "sales": y, "sales2": y + 1.0,
                         "hit": (y > 0.4).astype(int)})


def fake_result(spec, data, *, C=2, D=100, seed=1, row_loglik=True, effect=0.6):
    """An EstimateResult with draws near the truth and the log-likelihoods they imply."""
    rng = np.random.default_rng(seed)
    design = equation_designs(data, spec)[0]["outcome"]
    beta = np.zeros((C, D, design.p))
    beta[..., 0] = 0.4 + 0.05 * rng.normal(size=(C, D))
    beta[..., design.treatment_index] = effect + 0.05 * rng.normal(size=(C, D))
    sigma = 0.9 + 0.02 * rng.normal(size=(C, D))
    q = len(design.varying)
    sd = np.abs(0.5 + 0.05 * rng.normal(size=(C, D, q))) if q else None
    u = 0.3 * rng.normal(size=(C, D, design.n_groups, q)) if q else None
    fit = EquationFit(design, "gaussian", default_priors(design, "gaussian"), beta, sigma,
                      sd, None, u, None, Diagnostics(0, 1.0, 1000.0, 1000.0), 0.0)
    post = xr.Dataset({"beta": (("chain", "draw", "term"), beta)},
                      coords={"chain": np.arange(C), "draw": np.arange(D),
                              "term": list(design.terms)})
    rows = gaussian_row_loglik(design, beta, sigma, u).reshape(C, D, -1)
    if q:
        ll = {"y": (("chain", "draw", "group"),
                    group_loglik(fit, design).reshape(C, D, -1))}
        if row_loglik:
            ll["y_row"] = (("chain", "draw", "obs"), rows)
        coords = {"group": [str(g) for g in design.group_labels]}
    else:
        ll, coords = {"y": (("chain", "draw", "obs"), rows)}, {}
    attrs = {} if row_loglik else {"y_row": "left out: unit effects (a test)"}
    idata = az.InferenceData(posterior=post, log_likelihood=xr.Dataset(
        ll, coords={"chain": np.arange(C), "draw": np.arange(D), **coords}, attrs=attrs))
    fit = EquationFit(design, "gaussian", fit.priors, beta, sigma, sd, None, u, idata,
                      fit.diagnostics, 0.0)
    draws = {"total": beta[..., design.treatment_index]}
    return EstimateResult(spec=spec, settings=SamplerSettings(draws=D, chains=C),
                          fits={"outcome": fit}, effect_draws=draws)


@pytest.fixture
def compare_frame():
    return frame


@pytest.fixture
def result_factory():
    return fake_result
