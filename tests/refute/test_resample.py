"""Resampling tests: subsets of cities, leaving cities out, the cluster bootstrap."""

import warnings

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.refute.base import Options
from vagg_bayes.refute.judge import stability_row
from vagg_bayes.refute.resample import bootstrap_row, influence_prescreen
from vagg_bayes.refute.runner import RefitSummary
from vagg_bayes.refute.transforms import KeepGroups, ResampleGroups
from vagg_bayes.spec import Spec


def _frame():
    rng = np.random.default_rng(0)
    city = np.repeat(np.array(["a", "b", "c", "d"]), 6)
    firm = np.char.add(city, np.tile(["1", "2"], 12))
    year = np.tile(np.repeat([1, 2, 3], 2), 4)
    return pd.DataFrame({"city": city, "firm": firm, "year": year,
                         "x": rng.normal(size=24), "y": rng.normal(size=24)})


def test_keep_groups_keeps_or_drops_whole_groups():
    frame = _frame()
    kept = KeepGroups("city", ("a", "c"))(frame)
    assert set(kept["city"]) == {"a", "c"} and len(kept) == 12
    dropped = KeepGroups("city", ("a",), keep=False)(frame)
    assert set(dropped["city"]) == {"b", "c", "d"}


def test_bootstrap_copies_of_a_city_are_distinct_cities_with_distinct_firms():
    frame = _frame()
    out = ResampleGroups("city", "firm", ("b", "b", "d", "a"))(frame)
    assert len(out) == 24
    assert out["city"].nunique() == 4  # b drawn twice: two cities
    assert out["firm"].nunique() == 8
    assert out.groupby("city")["firm"].nunique().eq(2).all()
    # each copy carries the original rows
    copy = out[out["city"] == "b#1"]
    assert copy["x"].tolist() == frame.loc[frame["city"] == "b", "x"].tolist()
    assert not out.duplicated(["firm", "year"]).any()


def test_prescreen_ranks_a_planted_influential_city_first():
    rng = np.random.default_rng(1)
    n_city, n = 30, 20
    city = np.repeat(np.arange(n_city), n)
    x = rng.normal(size=city.size)
    y = 0.5 * x + rng.normal(size=city.size)
    y[city == 17] -= 6 * x[city == 17]  # one city with a reversed, strong slope
    frame = pd.DataFrame({"c": city, "x": x, "z": rng.normal(size=city.size), "y": y})
    spec = Spec(outcome="y", treatment="x", controls=("z",), group="c")
    ranked = influence_prescreen(frame, spec, "c")
    assert ranked.index[0] == 17 and len(ranked) == n_city
    assert ranked.iloc[0] > 5 * ranked.iloc[1]


REAL = {"mean": 1.0, "sd": 0.1, "hdi_low": 0.8, "hdi_high": 1.2}


def _summaries(means):
    return [RefitSummary("t", k, {"total": {"mean": float(m), "sd": 0.1,
                                            "hdi_low": m - 0.2, "hdi_high": m + 0.2}},
                         diagnostics_passed=True) for k, m in enumerate(means)]


def test_leave_one_out_rule_names_the_largest_move_and_sign_flips():
    row = stability_row("loo", "total", REAL, _summaries([1.02, 0.97, 1.05]),
                        tolerance=1.0, require_diagnostics=True, what="x",
                        labels=["a", "b", "c"], worst=True)
    assert row.verdict == "pass" and row.refuted_estimate == pytest.approx(1.05)
    row = stability_row("loo", "total", REAL, _summaries([1.02, -0.1, 1.05]),
                        tolerance=1.0, require_diagnostics=True, what="x",
                        labels=["a", "b", "c"], worst=True)
    assert row.verdict == "fail"
    assert "b -11.00 SD" in row.detail and "Sign flips: b" in row.detail


def test_subset_rule_tolerates_noise_but_not_a_moved_mean():
    rng = np.random.default_rng(2)
    ok = stability_row("s", "total", REAL, _summaries(1 + rng.normal(0, 0.05, 20)),
                       tolerance=0.5, require_diagnostics=True, what="x", max_flip_share=0.1)
    assert ok.verdict == "pass"
    moved = stability_row("s", "total", REAL, _summaries(1.2 + rng.normal(0, 0.05, 20)),
                          tolerance=0.5, require_diagnostics=True, what="x",
                          max_flip_share=0.1)
    assert moved.verdict == "fail" and "+2.0" in moved.detail


def test_bootstrap_rule_compares_the_bootstrap_sd_with_the_posterior_sd():
    rng = np.random.default_rng(3)
    kw = {"tolerance": 0.5, "sd_ratio": 1.5, "require_diagnostics": True, "what": "x"}
    calibrated = bootstrap_row("total", REAL, _summaries(1 + rng.normal(0, 0.1, 40)),
                               n_groups=30, **kw)
    assert calibrated.verdict == "pass"
    too_narrow = bootstrap_row("total", REAL, _summaries(1 + rng.normal(0, 0.3, 40)),
                               n_groups=30, **kw)
    assert too_narrow.verdict == "fail" and "x the posterior" in too_narrow.detail
    few = bootstrap_row("total", REAL, _summaries(1 + rng.normal(0, 0.1, 40)),
                        n_groups=6, **kw)
    assert few.verdict == "inconclusive" and "only 6 groups" in few.detail


@pytest.mark.slow
def test_resampling_tests_on_a_real_fit(firm_panel_factory, tmp_path):
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.refute import refute

    data, _ = firm_panel_factory(n_towns=10, n_plants=6, n_periods=4, seed=31, direct=0.5)
    spec = Spec(outcome="exp_res", treatment="dig", controls=("scale_ln",), group="town",
                time="period", group_time_effects=False)
    analysis = Analysis(spec, SamplerSettings(draws=150, tune=200, chains=2, random_seed=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = analysis.fit(data, tables=False)
    options = Options(subsets=3, bootstraps=20, loo_max_groups=3, drop_groups=("0", "1"),
                      require_diagnostics=False, seed=1)
    out = refute(analysis, data, result=result, out=tmp_path, options=options,
                 tests="data_subset,leave_one_group_out,group_bootstrap", progress=False)
    table = out.summary().set_index(["refuter", "effect"])
    subset = table.loc[("data_subset", "total")]
    assert subset["n_refits"] == 3 and subset["verdict"] == "pass", subset["detail"]
    assert "8 of the 10 values of 'town'" in subset["detail"]
    loo = table.loc[("leave_one_group_out", "total")]
    assert loo["n_refits"] == 3 and "pre-screen" in loo["detail"]
    assert loo["verdict"] in ("pass", "fail") and "Largest moves" in loo["detail"]
    named = table.loc[("leave_one_group_out[0,1]", "total")]
    assert named["n_refits"] == 1 and "dropped together" in named["detail"]
    boot = table.loc[("group_bootstrap", "total")]
    assert boot["n_refits"] == 20 and boot["verdict"] in ("pass", "fail")
    assert boot["hdi_low"] < result.summary("effects")["mean"][0] < boot["hdi_high"]
    for name in ("data_subset", "leave_one_group_out", "group_bootstrap"):
        assert (tmp_path / f"refute_{name}.png").stat().st_size > 1000
    assert len(list((tmp_path / "refits").glob("*.json"))) == 27
