"""Raw records from the simulator and the chain back to the panel's columns."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.data.raw import INDICATORS, RawRecords, rescale_truth, simulate_raw
from vagg_bayes.data.simulate import simulate_panel
from vagg_bayes.errors import DataError
from vagg_bayes.measures import build_indices

SIZE = dict(n_firms=3000, n_years=6, n_cities=60, seed=4)


@pytest.fixture(scope="module")
def simulated():
    return simulate_raw(**SIZE, n_industries=10)


def test_panel_and_truth_are_those_of_simulate_panel(simulated):
    raw, panel, truth = simulated
    panel0, truth0 = simulate_panel(**SIZE)
    pd.testing.assert_frame_equal(panel, panel0)
    assert {k: v for k, v in truth.items() if k != "raw"} == truth0
    assert "raw" in truth and truth["raw"]["n_industries"] == 10


def test_raw_tables(simulated):
    raw, panel, _ = simulated
    ex = raw.exports
    assert list(ex.columns) == ["firm_id", "city_id", "industry", "year", "exports"]
    assert len(ex) == 3000 * 7 and ex["year"].min() == 2010  # a base year before 2011
    assert (ex["exports"] > 0).all() and ex["industry"].between(1, 10).all()
    assert ex.groupby("firm_id")["industry"].nunique().eq(1).all()
    firm_city = panel.groupby("firm_id")["city_id"].first()
    assert ex.groupby("firm_id")["city_id"].first().equals(firm_city)
    ind = raw.indicators
    assert list(ind.columns) == ["city_id", "year", *INDICATORS]
    assert not ind.duplicated(["city_id", "year"]).any()
    assert len(ind) == panel[["city_id", "year"]].drop_duplicates().shape[0]
    assert (ind[list(INDICATORS)] > 0).all().all()
    assert raw.negative == ("offline_share",)
    emp = raw.employment
    assert set(emp["sector"]) == {"ict", "other"} and (emp["employment"] >= 0).all()


def test_rebuilt_outcome_is_the_panel_outcome_up_to_industry_year_terms(simulated):
    raw, panel, _ = simulated
    built = build_indices(raw, panel=panel)
    assert built.dropped == 0 and len(built.panel) == len(panel)
    rebuilt = built.panel["resilience"].to_numpy()
    original = panel["resilience"].to_numpy()
    industry = raw.exports.set_index(["firm_id", "year"])["industry"] \
        .reindex(pd.MultiIndex.from_frame(panel[["firm_id", "year"]])).to_numpy()
    dev = pd.Series(rebuilt - original)
    cell = pd.Series(industry * 10_000 + panel["year"].to_numpy())
    within = dev - dev.groupby(cell).transform("median")
    assert np.corrcoef(rebuilt, original)[0, 1] > 0.85
    assert within.abs().median() < 0.01 and within.std() < 0.05


def test_rebuilt_treatment_tracks_va(simulated):
    raw, panel, _ = simulated
    built = build_indices(raw, panel=panel)
    assert np.corrcoef(built.panel["va"], panel["va"])[0, 1] > 0.99
    assert built.panel["va"].between(0, 1).all()
    assert np.corrcoef(built.panel["va_lq"], panel["va"])[0, 1] > 0.8
    assert built.weights.sum() == pytest.approx(1.0)
    # every other column is the panel's own
    rest = [c for c in panel.columns if c not in ("va", "resilience")]
    pd.testing.assert_frame_equal(built.panel[rest], panel[rest])


def test_noise_free_indicators_rebuild_va_exactly():
    raw, panel, _ = simulate_raw(**SIZE, indicator_noise=0.0)
    built = build_indices(raw, panel=panel)
    va = panel["va"].to_numpy()
    lo, hi = va.min(), va.max()
    np.testing.assert_allclose(built.panel["va"], (va - lo) / (hi - lo), atol=1e-9)
    np.testing.assert_allclose(built.weights, 1 / len(INDICATORS), atol=1e-9)
    assert built.treatment_slope == pytest.approx(hi - lo, abs=1e-9)


def test_effect_on_rebuilt_columns_matches_the_original_after_rescaling(simulated):
    """Within-year OLS: the rebuilt chain gives the original coefficient times the slope."""
    raw, panel, truth = simulated
    built = build_indices(raw, panel=panel)

    def ols(df):
        cols = ["va", "gdp_pc_ln", "size_ln", "leverage", "shock_exposure"]
        demean = df[["resilience", *cols]] - df.groupby("year")[["resilience", *cols]] \
            .transform("mean")
        beta = np.linalg.lstsq(demean[cols].to_numpy(), demean["resilience"].to_numpy(),
                               rcond=None)[0]
        return beta[0]

    original, rebuilt = ols(panel), ols(built.panel)
    assert rebuilt == pytest.approx(original * built.treatment_slope, abs=0.05)
    scaled = rescale_truth(truth, built.treatment_slope)
    k = built.treatment_slope
    assert scaled["resilience"]["total"] == pytest.approx(truth["resilience"]["total"] * k)
    assert scaled["mediators"]["m_cost"]["a"] == pytest.approx(
        truth["mediators"]["m_cost"]["a"] * k)
    assert scaled["resilience"]["sigma"] == truth["resilience"]["sigma"]
    assert truth.get("rescaled_by") is None and scaled["rescaled_by"] == k


def test_without_a_panel_and_with_options(simulated):
    raw, _, _ = simulated
    built = build_indices(raw, form="ratio", winsorize=(0.01, 0.99), by="year", lq=None)
    frame = built.panel
    assert {"firm_id", "city_id", "industry", "year", "resilience", "va"} <= set(frame.columns)
    assert "va_lq" not in frame.columns
    assert built.dropped == 3000  # the base year has no previous year
    assert built.treatment_slope is None
    assert isinstance(built.weights, pd.DataFrame) and len(built.weights) == 6
    kept = build_indices(raw, dropna=False)
    assert kept.panel["resilience"].isna().sum() == 3000
    assert "entropy weights" in str(built) or "groups" in str(built)


def test_bad_input(simulated):
    raw, panel, _ = simulated
    with pytest.raises(DataError, match="RawRecords"):
        build_indices(raw.exports)
    with pytest.raises(DataError, match="'city_id'"):
        build_indices(raw, panel=panel.drop(columns="city_id"))
    dup = RawRecords(exports=raw.exports,
                     indicators=pd.concat([raw.indicators, raw.indicators.iloc[[0]]]))
    with pytest.raises(DataError, match="duplicate"):
        build_indices(dup)
    bad = RawRecords(exports=raw.exports.assign(exports=-1.0), indicators=raw.indicators)
    with pytest.raises(DataError, match="'exports'.*negative"):
        build_indices(bad)
    with pytest.raises(ValueError, match="n_industries"):
        simulate_raw(n_firms=10, n_industries=0)
