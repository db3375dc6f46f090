"""prior_sensitivity: power-scaling (arviz.psens) and refits under wider/narrower priors."""

import warnings

import numpy as np
import pandas as pd
import pytest

from vagg_bayes import Analysis
from vagg_bayes.bayes.design import build_design
from vagg_bayes.bayes.priors import default_priors
from vagg_bayes.refute.base import Context, Options
from vagg_bayes.refute.prior import power_scaling, prior_sensitivity
from vagg_bayes.spec import Spec

SPEC = Spec(outcome="yield_t", treatment="fert", controls=("soil",))


def _farms(seed=0, n=120):
    rng = np.random.default_rng(seed)
    soil = rng.normal(size=n)
    fert = 0.5 * soil + rng.normal(size=n)
    return pd.DataFrame({"soil": soil, "fert": fert,
                         "yield_t": 1.0 * fert + 0.5 * soil + rng.normal(size=n)})


def test_prior_scale_multiplies_every_prior_scale():
    design = build_design(_farms(), SPEC)
    base = default_priors(design, "gaussian")
    wide = Analysis(SPEC, prior_scale=2.0)._scaled(base)
    np.testing.assert_allclose(wide.theta_sd, 2 * base.theta_sd)
    assert wide.tau_scale == 2 * base.tau_scale
    assert wide.sigma_rate == base.sigma_rate / 2  # the prior mean of sigma doubles
    np.testing.assert_array_equal(wide.theta_mu, base.theta_mu)
    assert Analysis(SPEC)._scaled(base) is base
    with pytest.raises(ValueError, match="prior_scale"):
        Analysis(SPEC, prior_scale=0.0)


@pytest.fixture(scope="module")
def outcomes():
    from vagg_bayes.bayes.diagnostics import ConvergenceWarning
    from vagg_bayes.bayes.sample import SamplerSettings

    settings = SamplerSettings(draws=300, tune=300, chains=2, random_seed=5)
    data = _farms()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, scale in (("default", 1.0), ("tight", 0.02)):
            analysis = Analysis(SPEC, settings, prior_scale=scale)
            result = analysis.fit(data)
            out[name] = (result, prior_sensitivity(Context(analysis, result, data, Options())))
    return out


@pytest.mark.slow
def test_weak_default_priors_pass(outcomes):
    result, outcome = outcomes["default"]
    (row,) = outcome.rows
    assert row.refuter == "prior_sensitivity" and row.effect == "total"
    assert row.verdict == "pass", row.detail
    assert row.n_refits == 2 and row.n_failed == 0
    assert "psens prior" in row.detail and "x0.5 moves" in row.detail
    refits = outcome.notes["refits"]
    assert set(refits["prior_scale"]) == {0.5, 2.0}
    assert (refits["move_sd"] < 0.5).all()
    sens = outcome.notes["power_scaling"].set_index("quantity")
    assert sens.loc["total", "prior"] < 0.05 and sens.loc["total", "likelihood"] > 0.05
    assert "yield_t:fert" in sens.index  # per coefficient too


@pytest.mark.slow
def test_a_dominating_prior_fails(outcomes):
    result, outcome = outcomes["tight"]
    (row,) = outcome.rows
    # a prior SD of 0.05 sd(y)/sd(x) pulls the slope of about 1 towards 0 ...
    assert row.estimate < 0.8
    assert row.verdict == "fail"
    # ... power-scaling sees it, and the refits (scales relative to the analysis'
    # own, 0.01 and 0.04) move the effect by many posterior SDs
    assert "prior influential by power-scaling" in row.detail
    assert "moves under another prior" in row.detail
    assert outcome.notes["refits"]["move_sd"].max() > 1


@pytest.mark.slow
def test_power_scaling_reads_the_joint_log_prior_and_likelihood(outcomes):
    result, _ = outcomes["default"]
    table = power_scaling(result)
    assert list(table["quantity"]) == ["total"]
    assert np.isfinite(table[["prior", "likelihood"]].to_numpy()).all()
