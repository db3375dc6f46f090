"""Fake fits (no sampling) for the effects tests: designs from small frames, random draws."""

import arviz as az
import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.diagnostics import Diagnostics
from vagg_bayes.bayes.priors import default_priors
from vagg_bayes.bayes.fit import EquationFit
from vagg_bayes.spec import Spec


def make_panel(n_groups=8, n_time=4, per_cell=5, seed=0, binary_treatment=False):
    """Firms in cities over years: one firm-level and one city-level mediator."""
    rng = np.random.default_rng(seed)
    city = np.repeat(np.arange(n_groups), n_time * per_cell)
    year = np.tile(np.repeat(np.arange(n_time), per_cell), n_groups)
    cell_t = rng.random((n_groups, n_time))
    t = (cell_t > 0.5).astype(float) if binary_treatment else cell_t
    t = t[city, year]
    income = rng.normal(size=(n_groups, n_time))[city, year]
    n = len(city)
    frame = pd.DataFrame({
        "city": city,
        "year": 2000 + year,
        "t": t,
        "income": income,
        "size": rng.normal(size=n),
        "kind": rng.choice(["x", "y"], n),
        "m_firm": 0.5 * t + rng.normal(size=n),
        "m_city": (0.8 * cell_t + rng.normal(size=(n_groups, n_time)))[city, year],
    })
    frame["y"] = 0.3 * t + 0.2 * frame.m_firm + 0.1 * frame.m_city + rng.normal(size=n)
    frame["y01"] = (rng.random(n) < 1 / (1 + np.exp(-frame.y))).astype(int)
    return frame


def fake_fit(design, family="gaussian", *, C=2, D=7, seed=1, sd=0.3):
    """An EquationFit with random draws of every parameter (data scale)."""
    rng = np.random.default_rng(seed)
    beta = rng.normal(0.2, sd, size=(C, D, design.p))
    sigma = np.abs(rng.normal(1.0, 0.1, size=(C, D))) if family == "gaussian" else None
    q = len(design.varying)
    u = rng.normal(0, sd, size=(C, D, design.n_groups, q)) if q else None
    group_sd = np.abs(rng.normal(size=(C, D, q))) if q else None
    idata = az.from_dict(posterior={"beta": beta}, dims={"beta": ["term"]},
                         coords={"term": list(design.terms)})
    diagnostics = Diagnostics(0, 1.0, 1000.0, 1000.0)
    return EquationFit(design, family, default_priors(design, family), beta, sigma, group_sd,
                       None, u, idata, diagnostics, 0.0)


@pytest.fixture
def panel():
    return make_panel()


@pytest.fixture
def spec():
    return Spec(outcome="y", treatment="t", mediators=("m_firm", "m_city"),
                controls=("income", "size", "kind"), group="city", time="year",
                varying_slope=True)


@pytest.fixture
def fake_fits(panel, spec):
    """Outcome and mediator fits; the city mediator on one row per city-year."""
    from vagg_bayes.effects.mediation import mediator_design, outcome_design

    def build(family="gaussian", spec=spec, panel=panel):
        response = "y01" if family == "bernoulli" else "y"
        out = outcome_design(panel, spec, response=response)
        outcome = fake_fit(out, family, seed=1)
        meds = {m: fake_fit(mediator_design(panel, spec, m)[0], seed=2 + k)
                for k, m in enumerate(spec.mediators)}
        return outcome, meds

    return build


@pytest.fixture
def fake_panel_factory():
    return make_panel


@pytest.fixture
def fit_factory():
    return fake_fit
