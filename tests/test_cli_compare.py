"""`vagg-bayes compare` and `vagg-bayes scenario`: bad input exits 2 with one paragraph
before any sampling; real runs write the contract's files."""

import json

import pandas as pd
import pytest

from vagg_bayes.cli import main

BASE = """
[variables]
outcome = "score"
treatment = "dose"
controls = ["size"]
"""
GROUPED = '[data]\ngroup = "school"\n' + BASE


def run(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def _one_paragraph(err):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("vagg-bayes: error:"), err


@pytest.fixture
def files(tmp_path, panel_factory):
    data = tmp_path / "panel.csv"
    panel_factory().to_csv(data, index=False)

    def spec(name, text):
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return spec, data


def test_moderator_not_a_column(files, tmp_path, capsys):
    spec, data = files
    path = spec("mod", GROUPED + 'moderators = ["kindd"]\n')
    code, err = run(["estimate", path, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "'kindd'" in err and "moderators" in err and "'kind'" in err
    _one_paragraph(err)
    code, err = run(["scenario", path, "--data", data, "--out", tmp_path / "o",
                     "--shift", "1"], capsys)
    assert code == 2 and "'kindd'" in err
    assert not (tmp_path / "o").exists()


def test_moderator_with_one_level(files, tmp_path, capsys, panel_factory):
    spec, data = files
    panel_factory().assign(kind="alpha").to_csv(data, index=False)
    path = spec("mod", GROUPED + 'moderators = ["kind"]\n')
    other = spec("plain", GROUPED)
    code, err = run(["compare", other, path, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "Moderator 'kind'" in err and "single level" in err
    _one_paragraph(err)


def test_scenario_group_that_does_not_exist(files, tmp_path, capsys):
    spec, data = files
    path = spec("grouped", GROUPED)
    code, err = run(["scenario", path, "--data", data, "--out", tmp_path / "o",
                     "--shift", "1", "--groups", "3,Atlantis"], capsys)
    assert code == 2 and "'Atlantis'" in err and "'school'" in err and "'3'" not in err
    _one_paragraph(err)
    code, err = run(["scenario", spec("pooled", BASE), "--data", data, "--out",
                     tmp_path / "o", "--shift", "1", "--groups", "3"], capsys)
    assert code == 2 and "[data].group" in err
    code, err = run(["scenario", path, "--data", data, "--out", tmp_path / "o",
                     "--to-quantile", "2"], capsys)
    assert code == 2 and "between 0 and 1" in err


def test_scenario_needs_one_change(files, tmp_path, capsys):
    spec, data = files
    with pytest.raises(SystemExit) as info:
        main(["scenario", str(spec("grouped", GROUPED)), "--data", str(data), "--out",
              str(tmp_path / "o"), "--shift", "1", "--set", "2"])
    assert info.value.code == 2


def test_compare_bad_sets_of_specs(files, tmp_path, capsys):
    spec, data = files
    a = spec("a", GROUPED)
    code, err = run(["compare", a, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "two or more" in err
    other = spec("b", GROUPED.replace('outcome = "score"', 'outcome = "size"')
                 .replace('controls = ["size"]', 'controls = []'))
    code, err = run(["compare", a, other, "--data", data, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "not comparable" in err
    _one_paragraph(err)
    code, err = run(["compare", a, spec("c", BASE), "--data", data, "--out", tmp_path / "o",
                     "--loo-group", "district"], capsys)
    assert code == 2 and "'district'" in err
    code, err = run(["compare", spec("p1", BASE), spec("p2", BASE), "--data", data, "--out",
                     tmp_path / "o"], capsys)
    assert code == 2 and "--loo-group COL" in err
    panel = '[data]\nunit = "pupil"\ntime = "wave"\ngroup = "school"\n' + BASE
    code, err = run(["compare", a, spec("firms", panel), "--data", data, "--out",
                     tmp_path / "o", "--loo", "row"], capsys)
    assert code == 2 and "'firms'" in err and "--loo group" in err
    _one_paragraph(err)
    assert not (tmp_path / "o").exists()


SAMPLING = ["--draws", "300", "--tune", "300", "--seed", "3"]


@pytest.mark.slow
def test_compare_writes_the_table_and_averaged_effects(files, tmp_path, capsys):
    spec, data = files
    specs = [spec("pooled", BASE), spec("schools", GROUPED),
             spec("by_kind", GROUPED + 'moderators = ["kind"]\n')]
    out = tmp_path / "cmp"
    code, err = run(["compare", *specs, "--data", data, "--out", out, *SAMPLING], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "comparison.csv")
    assert table.columns[:10].tolist() == ["model", "rank", "elpd_loo", "p_loo", "elpd_diff",
                                           "weight", "se", "dse", "warning", "n_high_k"]
    assert sorted(table["model"]) == ["by_kind", "pooled", "schools"]
    assert table["weight"].sum() == pytest.approx(1.0)
    assert (table["loo"] == "group").all() and (table["n_units"] == 15).all()
    avg = pd.read_csv(out / "averaged_effects.csv")
    assert avg.columns[:8].tolist() == ["effect", "mean", "sd", "hdi_low", "hdi_high",
                                        "prob_positive", "r_hat", "ess_bulk"]
    effects = set(avg["effect"])
    assert {"total", "total[kind=alpha]", "contrast[kind: beta - alpha]"} <= effects
    total = avg.set_index("effect").loc["total"]
    assert 0.3 < total["mean"] < 0.7  # the small panel's slope is 0.5
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["loo"] == "group" and set(manifest["models"]) == set(table["model"])


@pytest.mark.slow
def test_scenario_shift_by_one_is_the_total_effect(files, tmp_path, capsys):
    spec, data = files
    path = spec("slopes", GROUPED + '\n[model]\nvarying_slope = true\n')
    out = tmp_path / "scn"
    code, err = run(["scenario", path, "--data", data, "--out", out, "--shift", "1",
                     "--threshold", "0.4", *SAMPLING], capsys)
    assert code == 0, err
    table = pd.read_csv(out / "scenario.csv", dtype={"group": str})
    assert table.columns[:7].tolist() == ["group", "mean", "sd", "hdi_low", "hdi_high",
                                          "prob_positive", "prob_above"]
    schools = sorted(pd.read_csv(data)["school"].astype(str).unique())
    assert table["group"].tolist() == ["all", *sorted(schools, key=int)]
    effects = pd.read_csv(out / "effects.csv").set_index("effect")
    assert table.loc[0, "mean"] == pytest.approx(effects.loc["total", "mean"], rel=1e-9)
    assert table.loc[0, "sd"] == pytest.approx(effects.loc["total", "sd"], rel=1e-9)
    assert (table["prob_above"] <= table["prob_positive"]).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario"].startswith("dose shift by 1.0")


@pytest.mark.slow
def test_demo_prices_the_three_proposals(tmp_path, capsys):
    """The demo's scenarios on a small simulated panel: two priced changes and the effect
    where physical agglomeration is high against low."""
    import warnings

    from vagg_bayes import Analysis
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.cli import _demo_scenarios, embedded_models
    from vagg_bayes.data.simulate import simulate_panel
    from vagg_bayes.spec import load_spec

    panel, _ = simulate_panel(n_firms=250, n_years=5, n_cities=20, n_provinces=5, seed=3)
    spec = load_spec(embedded_models() / "baseline.toml").with_(graph=None)
    settings = SamplerSettings(draws=200, tune=200, random_seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Analysis(spec, settings).fit(panel)
    tables = _demo_scenarios(result, panel, tmp_path, settings, manifest={"seed": 2})
    assert sorted(p.name for p in (tmp_path / "scenarios").iterdir()) == [
        "infrastructure_plus_1sd.csv", "lagging_to_median.csv", "manifest.json",
        "physical_agglomeration.csv"]
    lagging = tables["lagging_to_median"].set_index("group")
    assert lagging.loc["all", "changed_rows"] < lagging.loc["all", "rows"]
    assert len(lagging) == 21
    effects = tables["physical_agglomeration"]["effect"].tolist()
    assert effects == ["total[physical_agglomeration=high]",
                       "total[physical_agglomeration=low]",
                       "contrast[physical_agglomeration: low - high]"]
    assert "lagging city-years raised to the median" in capsys.readouterr().out
