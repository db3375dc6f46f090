"""The shock (event-study) design: the event panel by hand, the pre-trend check on fake
draws, bad configurations before sampling, and recovery of simulated event coefficients
(with and without a pre-trend) through the usual Bayesian machinery."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.analysis import Analysis
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.cli import main
from vagg_bayes.data.simulate import simulate_panel
from vagg_bayes.designs.shock import event_study_panel, pre_trend_check
from vagg_bayes.errors import DataError, DataWarning, SpecError
from vagg_bayes.spec import parse_spec

# ---------------------------------------------------------------- a panel by hand
YEARS = [2010, 2011, 2012, 2013, 2014]
# plant -> its treatment "dx" in each year
DX = {1: [0.1, 0.2, 0.3, 0.9, 0.9],
      2: [0.5, 0.5, 0.6, 0.1, 0.0],
      3: [1.0, 0.8, 0.7, 0.7, 0.2],
      4: [0.0, 0.1, 0.2, 0.4, 0.8]}
ZONE = {1: "a", 2: "a", 3: "b", 4: "b"}


def hand_panel() -> pd.DataFrame:
    rows = []
    for plant, values in DX.items():
        for k, (year, dx) in enumerate(zip(YEARS, values, strict=True)):
            rows.append({"plant": plant, "zone": ZONE[plant], "period": year, "dx": dx,
                         "out": 0.3 * plant + 0.1 * k + 0.05 * (plant * k % 3)})
    return pd.DataFrame(rows)


def hand_spec(**design):
    return parse_spec({"data": {"unit": "plant", "group": "zone", "time": "period"},
                       "variables": {"outcome": "out", "treatment": "dx"},
                       "design": {"shock_year": 2013, **design}})


@pytest.mark.parametrize("baseline,exposure", [
    ("year_before", {1: 0.3, 2: 0.6, 3: 0.7, 4: 0.2}),                # dx in 2012
    ("pre_mean", {1: 0.2, 2: 1.6 / 3, 3: 2.5 / 3, 4: 0.1}),           # mean over 2010-12
])
def test_event_columns_hand_computed(baseline, exposure):
    data = hand_panel()
    before = data.copy()
    study = event_study_panel(data, hand_spec(shock_baseline=baseline))
    pd.testing.assert_frame_equal(data, before)  # the caller's frame is untouched
    assert study.event_times == [-3, -2, 0, 1] and study.leads == [-3, -2]
    assert study.lags == [0, 1] and -1 not in study.columns
    frame = study.frame
    for k, col in study.columns.items():
        expected = [exposure[p] * (y - 2013 == k) for p, y in zip(frame.plant, frame.period,
                                                                   strict=True)]
        np.testing.assert_allclose(frame[col].to_numpy(), expected, rtol=0, atol=1e-12)
    assert study.spec.treatment == study.columns[0] == "dx_pre:t+0"
    assert study.spec.controls == ("dx_pre:t-3", "dx_pre:t-2", "dx_pre:t+1")
    assert study.spec.shock_year is None and study.spec.time == "period"
    exposure_rows = [exposure[p] for p in frame.plant]
    np.testing.assert_allclose(study.band, 0.1 * np.std(data["out"]) / np.std(exposure_rows))


@pytest.mark.parametrize("unit_effects", ["random", "none"])
def test_exposure_level_joins_without_absorbing_unit_effects(unit_effects):
    spec = hand_spec().with_(unit_effects=unit_effects)
    study = event_study_panel(hand_panel().assign(dx_pre=0.0), spec)  # name taken: prefixed
    assert study.spec.controls == ("dx_pre:t-3", "dx_pre:t-2", "dx_pre:t+1", "_dx_pre")
    np.testing.assert_allclose(study.frame["_dx_pre"],
                               study.frame.plant.map({1: 0.3, 2: 0.6, 3: 0.7, 4: 0.2}))
    fixed = event_study_panel(hand_panel(), hand_spec().with_(unit_effects="fixed"))
    assert fixed.spec.controls == ("dx_pre:t-3", "dx_pre:t-2", "dx_pre:t+1")


def test_band_from_spec_and_unit_without_baseline_year_left_out():
    data = hand_panel()
    data = data[~((data.plant == 4) & (data.period == 2012))]
    with pytest.warns(DataWarning, match="1 of 4 units of 'plant'.*no row in 2012"):
        study = event_study_panel(data, hand_spec(pretrend_band=0.25))
    assert study.dropped_units == 1 and set(study.frame.plant) == {1, 2, 3}
    assert study.band == 0.25


@pytest.mark.parametrize("shock,match", [
    (2020, r"shock_year = 2020 is outside the years of 'period' in data \(2010-2014\)"),
    (2009, r"shock_year = 2009 is outside the years"),
    (2010, r"No row of data has 'period' = 2009, the year before the shock \(2010\)"),
])
def test_shock_year_outside_or_without_pre_shock_year(shock, match):
    with pytest.raises(DataError, match=match):
        event_study_panel(hand_panel(), hand_spec().with_(shock_year=shock))


def test_gap_at_reference_year_and_non_integer_time():
    data = hand_panel()
    with pytest.raises(DataError, match="'period' = 2012, the year before the shock"):
        event_study_panel(data[data.period != 2012], hand_spec())
    with pytest.raises(DataError, match="'period' = 2013, the shock year"):
        event_study_panel(data[data.period != 2013], hand_spec())
    text = data.assign(period="y" + data.period.astype(str))
    with pytest.raises(DataError, match="'period' in data must hold integer years"):
        event_study_panel(text, hand_spec())


def test_no_leads_warns():
    with pytest.warns(DataWarning, match="no leads"):
        study = event_study_panel(hand_panel(), hand_spec().with_(shock_year=2011))
    assert study.leads == [] and study.event_times == [0, 1, 2, 3]
    table, verdict = pre_trend_check({}, 0.1)
    assert verdict["passed"] is None and table.empty


def test_spec_design_section():
    base = {"data": {"unit": "f", "time": "y"}, "variables": {"outcome": "o", "treatment": "t"}}
    assert parse_spec(base).shock_year is None
    spec = parse_spec({**base, "design": {"shock_year": 2018, "pretrend_band": 1}})
    assert spec.shock_year == 2018 and spec.shock_baseline == "year_before"
    assert spec.to_dict()["shock_year"] == 2018
    with pytest.raises(SpecError, match=r"Unknown key 'year' in \[design\]. Valid keys of "
                                        r"\[design\] are: shock_year, shock_baseline"):
        parse_spec({**base, "design": {"year": 2018}})
    with pytest.raises(SpecError, match="must be a year"):
        parse_spec({**base, "design": {"shock_year": True}})
    with pytest.raises(SpecError, match="shock_baseline must be one of year_before, pre_mean"):
        parse_spec({**base, "design": {"shock_year": 2018, "shock_baseline": "mean"}})
    with pytest.raises(SpecError, match="pretrend_band must be a positive number"):
        parse_spec({**base, "design": {"shock_year": 2018, "pretrend_band": 0}})
    with pytest.raises(SpecError, match=r"needs \[data\].time: the shock design"):
        parse_spec({**base, "data": {"unit": "f"}, "design": {"shock_year": 2018}})
    with pytest.raises(SpecError, match=r"cannot be combined with \[variables\].mediators"):
        parse_spec({**base, "variables": {**base["variables"], "mediators": ["m"]},
                    "design": {"shock_year": 2018}})


# ---------------------------------------------------------------- the pre-trend check
def test_pre_trend_check_exact_on_one_lead():
    draws = np.array([[-1.0, 1.0, 2.0, 3.0, 5.0]])  # mean 2: |x - 2| >= |0 - 2| twice
    table, verdict = pre_trend_check({"event[-2]": draws}, 1.5)
    assert verdict["joint_prob"] == pytest.approx(0.4, abs=1e-12)
    assert verdict["prob_within_band"] == pytest.approx(0.4, abs=1e-12)  # -1 and 1
    assert list(table["check"]) == ["event[-2]", "joint", "band", "verdict"]


def test_pre_trend_check_passes_at_zero_and_fails_on_a_trend():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(3, 2, 2000))
    common = rng.normal(size=(2, 2000))  # leads share the reference year: correlated
    flat = {f"event[{k}]": 0.3 * noise[i] + 0.3 * common for i, k in enumerate((-4, -3, -2))}
    _, ok = pre_trend_check(flat, 0.5)
    assert ok["passed"] and ok["joint_prob"] > 0.06
    assert all(ok["leads_cover_zero"].values())
    trend = {name: d + (k - 1.0) for k, (name, d) in enumerate(flat.items())}  # -1, 0, 1
    table, bad = pre_trend_check(trend, 0.5)
    assert not bad["passed"] and bad["joint_prob"] < 0.06
    assert not table.set_index("check").loc["verdict", "passed"]


# ---------------------------------------------------------------- the simulator
def test_simulator_shock_term_and_truth():
    base, _ = simulate_panel(60, 6, 8, n_provinces=3, seed=2)
    data, truth = simulate_panel(60, 6, 8, n_provinces=3, seed=2,
                                 shock_design={"year": 2014, "effect": 0.8, "pre_trend": 0.1})
    pd.testing.assert_frame_equal(data.drop(columns="resilience"),
                                  base.drop(columns="resilience"))
    exposure = data.firm_id.map(data[data.year == 2013].set_index("firm_id")["va"])
    k = data.year - 2014
    np.testing.assert_allclose(data.resilience - base.resilience,
                               exposure * (0.8 * (k >= 0) + 0.1 * (k + 1)), atol=1e-12)
    shock = truth["shock_design"]
    assert shock["event"] == pytest.approx({"-3": -0.2, "-2": -0.1, "0": 0.9, "1": 1.0,
                                            "2": 1.1})
    assert shock["post_average"] == pytest.approx(1.0) and shock["reference_year"] == 2013
    with pytest.raises(ValueError, match="shock_design\\['year'\\] must be an int year"):
        simulate_panel(60, 6, 8, n_provinces=3, shock_design={"year": 2011})


# ---------------------------------------------------------------- recovery (sampling)
def shock_panel(pre_trend: float, seed: int = 4):
    data, truth = simulate_panel(2000, 8, 200, seed=seed, effect_scale=0.0, city_year_sd=0.1,
                                 shock_design={"year": 2015, "effect": 2.0,
                                               "pre_trend": pre_trend})
    data = data.rename(columns={"firm_id": "plant", "city_id": "town", "year": "yr",
                                "va": "digital", "resilience": "res"})
    return data, truth["shock_design"]


SHOCK_SPEC = {"data": {"unit": "plant", "group": "town", "time": "yr"},
              "variables": {"outcome": "res", "treatment": "digital",
                            "controls": ["size_ln", "leverage", "gdp_pc_ln"]},
              "design": {"shock_year": 2015}}
SETTINGS = SamplerSettings(draws=500, tune=500, chains=2, random_seed=3)


@pytest.mark.slow
def test_recovers_event_coefficients_without_pre_trend():
    data, truth = shock_panel(0.0)
    result = Analysis(parse_spec(SHOCK_SPEC), SETTINGS).fit(data)
    effects = result.summary("effects").set_index("effect")
    assert list(effects.index) == ["total", *[f"event[{k}]" for k in (-4, -3, -2, 0, 1, 2, 3)]]
    for k, value in truth["event"].items():
        row = effects.loc[f"event[{k}]"]
        assert row.hdi_low <= value <= row.hdi_high, (k, value, row)
    total = effects.loc["total"]
    assert total.hdi_low <= truth["post_average"] <= total.hdi_high
    assert total.hdi_low > 1.0  # the effect is found, not an interval over everything
    verdict = result.meta["design_checks"]["pre_trend"]
    assert verdict["passed"] and all(verdict["leads_cover_zero"].values())
    assert verdict["prob_within_band"] > 0.9  # band: 0.1 SD(res) per SD of exposure
    assert result.summary("pre_trend").set_index("check").loc["verdict", "passed"]


@pytest.mark.slow
def test_pre_trend_check_fails_with_a_pre_trend():
    data, truth = shock_panel(0.6)
    analysis = Analysis(parse_spec(SHOCK_SPEC), SETTINGS)
    result = analysis.fit(data)
    verdict = result.meta["design_checks"]["pre_trend"]
    assert not verdict["passed"] and verdict["joint_prob"] < 0.06
    assert verdict["prob_within_band"] < 0.1
    total = result.summary("effects").set_index("effect").loc["total"]
    assert total.hdi_low <= truth["post_average"] <= total.hdi_high  # 3.5: trend included
    with pytest.raises(SpecError, match=r"Refits .* of the shock design"):
        analysis.refit(data)  # refused before any work


# ---------------------------------------------------------------- command line
def run(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def cli_files(tmp_path):
    data, truth = simulate_panel(400, 6, 40, seed=1, effect_scale=0.0,
                                 shock_design={"year": 2014, "effect": 2.0})
    data = data.rename(columns={"firm_id": "plant", "city_id": "town", "year": "yr",
                                "va": "digital", "resilience": "res"})
    path = tmp_path / "panel.csv"
    data.to_csv(path, index=False)
    spec = tmp_path / "spec.toml"
    spec.write_text('[data]\nunit = "plant"\ngroup = "town"\ntime = "yr"\n'
                    '[variables]\noutcome = "res"\ntreatment = "digital"\n'
                    'controls = ["gdp_pc_ln"]\n[design]\nshock_year = 2013\n')
    return spec, path


@pytest.mark.parametrize("flag,match", [
    ("2030", r"shock_year = 2030 is outside the years of 'yr' in panel.csv \(2011-2016\)"),
    ("2011", r"'yr' = 2010, the year before the shock \(2011\)"),
])
def test_cli_bad_shock_year_exits_2(cli_files, tmp_path, capsys, flag, match):
    spec, data = cli_files
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o",
                     "--shock-year", flag], capsys)
    assert code == 2 and re.search(match, err)
    assert not (tmp_path / "o").exists()


def test_cli_no_time_column_exits_2(cli_files, tmp_path, capsys):
    spec, data = cli_files
    spec.write_text(spec.read_text().replace('time = "yr"\n', ""))
    code, err = run(["estimate", spec, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "needs [data].time" in err and str(spec) in err


@pytest.mark.slow
def test_cli_writes_event_study(cli_files, tmp_path, capsys):
    spec, data = cli_files
    out = tmp_path / "out"
    code, _ = run(["estimate", spec, "--data", data, "--out", out, "--shock-year", "2014",
                   "--draws", "200", "--tune", "200", "--seed", "2"], capsys)
    assert code == 0
    effects = pd.read_csv(out / "effects.csv")
    assert list(effects.columns) == ["effect", "mean", "sd", "hdi_low", "hdi_high",
                                     "prob_positive", "r_hat", "ess_bulk"]
    # the flag (2014) overrides the spec (2013): event times of 2011-2016 around 2014
    assert list(effects.effect) == ["total", "event[-3]", "event[-2]", "event[0]",
                                    "event[1]", "event[2]"]
    assert (out / "event_study.png").stat().st_size > 10_000
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert set(diagnostics["pre_trend"]) >= {"passed", "joint_prob", "leads_cover_zero"}
    assert set(diagnostics["pre_trend"]["leads_cover_zero"]) == {"event[-3]", "event[-2]"}
    table = pd.read_csv(out / "pre_trend.csv")
    assert list(table.check) == ["event[-3]", "event[-2]", "joint", "band", "verdict"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["shock_year"] == 2014
    assert manifest["shock_design"]["reference_year"] == 2013
