"""Acceptance: on a simulated panel whose treatment is confounded by a latent city-year
factor, the naive estimate's 94 % HDI misses the truth and the IV estimate's covers it; a
weak instrument is flagged, a strong one is not. Columns are renamed on purpose."""

import warnings

import numpy as np
import pytest

from vagg_bayes.analysis import Analysis
from vagg_bayes.bayes.diagnostics import ConvergenceWarning
from vagg_bayes.bayes.iv import iv_designs
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.data import simulate_panel
from vagg_bayes.data.panel import validate_panel
from vagg_bayes.spec import Spec

RENAME = {"resilience": "er", "va": "digi", "city_id": "town", "year": "yr",
          "firm_id": "fid", "gdp_pc_ln": "gdp", "size_ln": "employees"}
CONTROLS = ("gdp", "region", "employees", "age_ln", "leverage", "ownership", "shock_exposure")


def confounded_panel(strength, seed=3):
    df, truth = simulate_panel(n_firms=1500, n_years=6, n_cities=60, n_provinces=10,
                               seed=seed, confounded_iv={"confounding": 1.0,
                                                         "strength": strength})
    net = truth["confounded_iv"]["internet_share_lag"]
    df = df.rename(columns=RENAME)
    df["phones_x_net"] = np.log(df["tel1984"]) * df["yr"].astype(str).map(net)
    return df, truth


def spec(**extra):
    return Spec(outcome="er", treatment="digi", controls=CONTROLS, unit="fid", group="town",
                time="yr", unit_effects="none", **extra)


def test_weak_instrument_flagged_strong_not():
    for strength, weak in ((0.05, True), (4.0, False)):
        df, _ = confounded_panel(strength)
        s = spec(instrument=("phones_x_net",))
        first = iv_designs(validate_panel(df, s), s).strength
        assert first.weak is weak, (strength, first.f)
        assert (first.warning() is not None) is weak
        assert first.level == "town x yr cells" and first.n_clusters == 60


@pytest.mark.slow
def test_naive_misses_the_truth_iv_covers_it():
    df, truth = confounded_panel(4.0)
    true_total = truth["resilience"]["total"]
    settings = SamplerSettings(draws=1000, tune=600, chains=2, random_seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # asserted below instead
        naive = Analysis(spec(), settings).fit(df).summary("effects").set_index("effect")
        result = Analysis(spec(instrument=("phones_x_net",)), settings).fit(df)
    ivfx = result.summary("effects").set_index("effect")
    lo, hi = naive.loc["total", ["hdi_low", "hdi_high"]]
    assert lo > true_total, (lo, hi, true_total)  # confounded upwards, interval misses
    lo, hi = ivfx.loc["total", ["hdi_low", "hdi_high"]]
    assert lo < true_total < hi, (lo, hi, true_total)
    assert ivfx.loc["total", "r_hat"] < 1.01 and ivfx.loc["total", "ess_bulk"] > 400
    assert result.meta["first_stage"]["weak"] is False
    rho = result.summary("coefficients").set_index("term").loc["rho"]
    assert rho["hdi_low"] > 0  # the latent factor raises va and resilience together
