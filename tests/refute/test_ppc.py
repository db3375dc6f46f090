"""posterior_predictive: statistics of the data against posterior predictive replicates."""

import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.refute.base import Context, Options
from vagg_bayes.refute.ppc import loo_pit_check, posterior_predictive, ppp
from vagg_bayes.spec import Spec


def test_ppp_is_two_sided():
    replicated = np.arange(100.0)
    assert ppp(50.0, replicated) == pytest.approx(1.0, abs=0.03)
    assert ppp(-1.0, replicated) == 0.0
    assert ppp(97.5, replicated) == pytest.approx(0.04)  # 2 of 100 above, doubled


def test_loo_pit_needs_a_per_row_log_likelihood():
    import arviz as az
    import xarray as xr

    ll = xr.Dataset({"y": (("chain", "draw", "group"), np.zeros((2, 10, 4)))})
    fit = SimpleNamespace(family="gaussian", idata=az.InferenceData(log_likelihood=ll))
    out = loo_pit_check(SimpleNamespace(fits={"outcome": fit}), np.zeros(8), np.zeros((20, 8)))
    assert "per-row" in out["reason"]
    fit = SimpleNamespace(family="bernoulli", idata=az.InferenceData(log_likelihood=ll))
    out = loo_pit_check(SimpleNamespace(fits={"outcome": fit}), np.zeros(8), np.zeros((20, 8)))
    assert "discrete" in out["reason"]


def _kiosks(errors, seed=0, n=360, n_districts=18):
    """Kiosks in districts: turnover on staff and ads, district intercepts."""
    rng = np.random.default_rng(seed)
    district = rng.integers(0, n_districts, n)
    staff = rng.normal(size=n)
    ads = 0.5 * staff + rng.normal(size=n)
    turnover = (0.6 * ads + 0.5 * staff + 0.4 * rng.normal(size=n_districts)[district]
                + errors(rng, n))
    return pd.DataFrame({"district": district, "staff": staff, "ads": ads,
                         "turnover": turnover})


@pytest.fixture(scope="module")
def checks():
    from vagg_bayes import Analysis
    from vagg_bayes.bayes.diagnostics import ConvergenceWarning
    from vagg_bayes.bayes.sample import SamplerSettings

    spec = Spec(outcome="turnover", treatment="ads", controls=("staff",), group="district")
    analysis = Analysis(spec, SamplerSettings(draws=300, tune=300, chains=2, random_seed=2))
    good = _kiosks(lambda rng, n: rng.normal(size=n))
    # strongly right-skewed errors: the Gaussian model misses the lower tail and the
    # shape of the predictive distribution
    skewed = _kiosks(lambda rng, n: rng.lognormal(0.0, 1.0, n), seed=1)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = analysis.fit(good)
        out["good"] = posterior_predictive(Context(analysis, fitted, good, Options()))
        refitted = analysis.refit(skewed, loglik=True)
        out["skewed"] = posterior_predictive(Context(analysis, refitted, skewed, Options()))
    return out


@pytest.mark.slow
def test_a_well_specified_model_passes_every_check(checks):
    rows = {r.effect: r for r in checks["good"].rows}
    assert set(rows) == {"turnover:mean", "turnover:sd", "turnover:q05", "turnover:q95",
                         "turnover:group_means", "turnover:loo_pit"}
    assert all(r.verdict == "pass" for r in rows.values()), [r.detail for r in rows.values()]
    assert all(r.refuter == "posterior_predictive" for r in rows.values())
    assert rows["turnover:sd"].hdi_low < rows["turnover:sd"].estimate < rows["turnover:sd"].hdi_high
    assert "KS" in rows["turnover:loo_pit"].detail
    groups = checks["good"].notes["groups"]
    assert len(groups) == 18 and groups["p_value"].between(0, 1).all()


@pytest.mark.slow
def test_skewed_errors_fail_the_tail_and_calibration_checks(checks):
    rows = {r.effect: r for r in checks["skewed"].rows}
    assert rows["turnover:q05"].verdict == "fail"
    assert rows["turnover:q05"].estimate > rows["turnover:q05"].hdi_high
    assert rows["turnover:loo_pit"].verdict == "fail"
    assert rows["turnover:loo_pit"].p_value < 0.01


@pytest.mark.slow
def test_the_figure_is_written(checks, tmp_path):
    write = checks["good"].figures["ppc.png"]
    write(tmp_path / "ppc.png")
    assert (tmp_path / "ppc.png").stat().st_size > 1000
