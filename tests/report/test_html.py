"""The report page builder: sections follow the files, headline numbers are effects.csv's.

Results folders are written by hand here (tables as the commands write them, with renamed
columns), so every test runs in about a second without sampling.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.cli import main
from vagg_bayes.errors import DataError
from vagg_bayes.report.html import build_report, decimals, fmt, fmt_prob, write_report

EFFECTS = pd.DataFrame({
    "effect": ["total", "direct", "indirect", "indirect:lag_cost"],
    "mean": [0.31274, 0.2012, 0.11154, 0.11154],
    "sd": [0.045, 0.041, 0.0076, 0.0076],
    "hdi_low": [0.22671, 0.12, 0.0973, 0.0973],
    "hdi_high": [0.39849, 0.28, 0.12588, 0.12588],
    "prob_positive": [0.987, 1.0, 1.0, 1.0],
    "r_hat": [1.001, 1.002, 1.0, 1.0],
    "ess_bulk": [1500.0, 1400.0, 1600.0, 1600.0],
})

SPEC = {"outcome": "export_rebound", "treatment": "digital_density", "family": "gaussian",
        "mediators": ["lag_cost"], "group": "prefecture", "graph": None}


def write_folder(path, *, effects=EFFECTS, spec=SPEC, diagnostics_pass=True, extra=()):
    """A results folder as `vagg-bayes estimate` writes it (no posterior.nc)."""
    path.mkdir(parents=True, exist_ok=True)
    effects.to_csv(path / "effects.csv", index=False)
    (path / "manifest.json").write_text(json.dumps({
        "spec": spec, "seed": 17, "data_file_sha256": "ab" * 32, "data_hash": "cd" * 32,
        "versions": {"vagg-bayes": "0.1.0", "pymc": "5.28.5"},
        "command_line": ["vagg-bayes", "estimate", "s.toml"]}))
    (path / "diagnostics.json").write_text(json.dumps({
        "passed": diagnostics_pass, "divergences": 0 if diagnostics_pass else 7,
        "max_r_hat": 1.004 if diagnostics_pass else 1.08, "min_ess_bulk": 900.0,
        "min_ess_tail": 800.0,
        "problems": [] if diagnostics_pass else ["7 divergent transitions after tuning"]}))
    for name in extra:
        if name == "refutations.csv":
            pd.DataFrame({
                "refuter": ["placebo_time", "data_subset", "placebo_permute_groups"],
                "estimate": [0.31, 0.31, 0.31], "refuted_estimate": [0.01, 0.33, np.nan],
                "hdi_low": [-0.1, 0.2, np.nan], "hdi_high": [0.12, 0.45, np.nan],
                "passed": [True, False, np.nan],
                "detail": ["covers zero", "moved 3 SD", "too few placebos"],
                "verdict": ["pass", "fail", "inconclusive"]}).to_csv(
                    path / name, index=False)
        elif name == "scenario.csv":
            pd.DataFrame({"group": ["all", "p1", "p2"], "mean": [0.0421, 0.05, 0.03],
                          "sd": [0.0102, 0.01, 0.01], "hdi_low": [0.0231, 0.03, 0.01],
                          "hdi_high": [0.0611, 0.07, 0.05], "prob_positive": [1.0, 1.0, 1.0],
                          "prob_above": [1.0, 1.0, 1.0]}).to_csv(path / name, index=False)
        elif name == "comparison.csv":
            pd.DataFrame({"model": ["pooled", "nested"], "rank": [0, 1],
                          "elpd_loo": [-100.0, -110.0], "p_loo": [5.0, 9.0],
                          "elpd_diff": [0.0, 10.0], "weight": [0.9, 0.1], "se": [3.0, 3.0],
                          "dse": [0.0, 2.0], "warning": [False, False],
                          "n_high_k": [0, 0]}).to_csv(path / name, index=False)
        elif name == "sensitivity.csv":
            pd.DataFrame({"mediator": ["lag_cost"], "scale": ["outcome scale"],
                          "acme": [0.11], "rho_zero": [0.21]}).to_csv(path / name, index=False)
        elif name == "group_ranking.csv":
            pd.DataFrame({"prefecture": ["p2", "p1"], "mean": [0.4, 0.2],
                          "rank_mean": [1.2, 1.8]}).to_csv(path / name, index=False)
        else:
            raise ValueError(name)
    return path


def section(page: str, ident: str) -> str:
    found = re.search(rf'<section id="{ident}">(.*?)</section>', page, re.S)
    assert found, ident
    return found.group(1)


def absent(page: str, ident: str) -> bool:
    return 'class="absent"' in section(page, ident)


def test_headline_numbers_are_those_of_effects_csv(tmp_path):
    page = build_report([write_folder(tmp_path / "run")])
    headline = re.search(r'<p class="headline" id="headline">(.*?)</p>', page).group(1)
    # sd 0.045: two significant digits of the SD -> three decimals; P 0.987 -> 0.99
    assert headline == ("A one-unit rise in <b>digital_density</b> changes "
                        "<b>export_rebound</b> by <b>0.313</b> (94 % HDI 0.227 to 0.398); "
                        "P(effect &gt; 0) = 0.99.")
    sub = re.search(r'<p class="sub">(.*?)</p>', page).group(1)
    # direct sd 0.041 -> 3 decimals; indirect sd 0.0076 -> 4 decimals
    assert "direct 0.201 (94 % HDI 0.120 to 0.280)" in sub
    assert "indirect 0.1115 (94 % HDI 0.0973 to 0.1259) through 1 mechanisms" in sub


def test_number_formats():
    assert [decimals(s) for s in (2.5, 0.45, 0.045, 0.0076, 0.0)] == [1, 2, 3, 4, 3]
    assert fmt(-0.0001, 3) == "0.000" and fmt(float("nan"), 2) == "n/a"
    assert [fmt_prob(p) for p in (0.5, 0.987, 0.9995, 1.0, 0.004)] == \
        ["0.50", "0.99", "1.000", "1.000", "0.004"]


def test_bernoulli_headline_speaks_of_the_probability(tmp_path):
    page = build_report([write_folder(tmp_path / "run", spec={**SPEC, "family": "bernoulli",
                                                                "outcome": "survived"})])
    assert "changes <b>the probability of survived</b> by <b>0.313</b>" in page


def test_sections_follow_the_files(tmp_path):
    bare = build_report([write_folder(tmp_path / "bare")])
    for ident in ("refutations", "comparison", "scenarios", "sensitivity", "heterogeneity",
                  "densities", "ppc", "dag"):
        assert absent(bare, ident), ident
    for ident in ("effects", "diagnostics", "manifest"):
        assert not absent(bare, ident), ident
    assert "DIAGNOSTICS FAIL" not in bare

    full = build_report([write_folder(tmp_path / "full", extra=(
        "refutations.csv", "scenario.csv", "comparison.csv", "sensitivity.csv",
        "group_ranking.csv"))])
    for ident in ("refutations", "comparison", "scenarios", "sensitivity", "heterogeneity"):
        assert not absent(full, ident), ident
    refutations = section(full, "refutations")
    assert refutations.count('class="pass"') == 1 and refutations.count('class="fail"') == 1
    assert refutations.count('class="inconclusive"') == 1
    assert "3 rows: 1 pass, 1 fail, 1 inconclusive." in refutations
    scenarios = section(full, "scenarios")
    assert "over all rows: <b>0.042</b> (94 % HDI 0.023 to 0.061)" in scenarios
    assert "<td>pooled</td>" in section(full, "comparison")
    assert "<td>lag_cost</td>" in section(full, "sensitivity")
    assert "<td>p2</td>" in section(full, "heterogeneity")
    manifest = section(full, "manifest")
    assert "ab" * 32 in manifest and "<td class=\"detail\">17</td>" in manifest


def test_effects_table_and_forest_come_from_effects_csv(tmp_path):
    page = build_report([write_folder(tmp_path / "run")])
    effects = section(page, "effects")
    assert effects.count('<img id="effects-figure"') == 1
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>", effects)
    assert rows == [(e, f"{m:.4f}") for e, m in zip(EFFECTS.effect, EFFECTS["mean"], strict=True)]


def test_moderator_rows_are_heterogeneity_not_main_effects(tmp_path):
    rows = pd.DataFrame({"effect": ["total", "total[sector=a]", "contrast[sector: b - a]"],
                         "mean": [0.3, 0.2, 0.1], "sd": [0.05, 0.06, 0.07],
                         "hdi_low": [0.2, 0.1, -0.03], "hdi_high": [0.4, 0.3, 0.23],
                         "prob_positive": [1.0, 1.0, 0.9]})
    page = build_report([write_folder(tmp_path / "run", effects=rows)])
    het = section(page, "heterogeneity")
    assert "<td>contrast[sector: b - a]</td>" in het and "<img" in het
    assert "<td>total</td>" not in het


def test_failing_diagnostics_raise_a_banner_above_the_headline(tmp_path):
    page = build_report([write_folder(tmp_path / "run", diagnostics_pass=False)])
    banner = page.index('id="diagnostics-banner"')
    assert banner < page.index('id="headline"')
    assert "7 divergent transitions after tuning" in page[banner:page.index('id="headline"')]


def test_densities_come_from_posterior_nc(tmp_path):
    import xarray as xr

    run = write_folder(tmp_path / "run")
    draws = np.random.default_rng(0).normal(0.3, 0.05, size=(2, 100, len(EFFECTS)))
    xr.Dataset({"effects": (("chain", "draw", "effect"), draws)},
               coords={"effect": list(EFFECTS.effect)}).to_netcdf(
                   run / "posterior.nc", group="posterior", engine="h5netcdf")
    densities = section(build_report([run]), "densities")
    assert "<img" in densities and 'class="absent"' not in densities


def test_several_folders_make_one_report_in_the_first(tmp_path):
    first = write_folder(tmp_path / "baseline", effects=EFFECTS.iloc[:1])
    second = write_folder(tmp_path / "mech")
    nested = write_folder(first / "scenarios", extra=("scenario.csv",))
    (nested / "effects.csv").unlink()
    path = write_report([first, second])
    assert path == first / "report.html" and not (second / "report.html").exists()
    page = path.read_text(encoding="utf-8")
    # the first folder's total leads; the second's rows share the forest plot and tables
    assert "Total effect from baseline/effects.csv" in page
    assert "<h3>mech/effects.csv</h3>" in page and "baseline/scenarios/scenario.csv" in page
    assert not [p for p in first.iterdir() if p.name.startswith(".")]  # no temporary file


def test_page_is_self_contained(tmp_path):
    page = build_report([write_folder(tmp_path / "run", extra=("refutations.csv",))])
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources)
    assert "<script" not in page and "@import" not in page and "url(" not in page


def test_a_folder_that_is_not_a_results_folder_is_an_error(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="is not a results folder: it holds none of "
                                        "effects.csv"):
        build_report([tmp_path / "notes"])
    code = main(["report", str(write_folder(tmp_path / "run")), str(tmp_path / "notes")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(tmp_path / "notes") in err
    assert not (tmp_path / "run" / "report.html").exists()


def test_a_damaged_table_names_the_file(tmp_path, capsys):
    run = write_folder(tmp_path / "run")
    EFFECTS.drop(columns="hdi_low").to_csv(run / "effects.csv", index=False)
    code = main(["report", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and "effects.csv lacks the column(s) hdi_low" in err


def test_cli_report_writes_report_html(tmp_path, capsys):
    run = write_folder(tmp_path / "run")
    assert main(["report", str(run)]) == 0
    assert f"Report written to {run / 'report.html'}" in capsys.readouterr().out
    assert (run / "report.html").read_text(encoding="utf-8") == build_report([run])


def test_a_comparison_folder_names_its_models_and_their_diagnostics(tmp_path):
    run = tmp_path / "cmp"
    run.mkdir()
    write_folder(tmp_path / "x", extra=("comparison.csv",))
    (tmp_path / "x" / "comparison.csv").rename(run / "comparison.csv")
    EFFECTS.to_csv(run / "averaged_effects.csv", index=False)
    (run / "manifest.json").write_text(json.dumps({"command": "compare", "models": {
        "pooled": {"spec": SPEC, "diagnostics_passed": True},
        "nested": {"spec": SPEC, "diagnostics_passed": False}}}))
    page = build_report([run])
    headline = re.search(r'id="headline">(.*?)</p>', page).group(1)
    assert headline.startswith("Averaged over the compared models by their stacking weights, "
                               "a one-unit rise in <b>digital_density</b> changes "
                               "<b>export_rebound</b> by <b>0.313</b>")
    banner = page[page.index('id="diagnostics-banner"'):page.index('id="headline"')]
    assert "the posterior of model nested fails its diagnostics" in banner
    assert "pooled" not in banner
    assert "<h3>cmp/manifest.json: FAIL</h3>" in section(page, "diagnostics")


def _add_diagnostics(path, **extra):
    diag = json.loads((path / "diagnostics.json").read_text())
    diag.update(extra)
    (path / "diagnostics.json").write_text(json.dumps(diag))


def test_design_section_says_selection_on_observables_without_a_design(tmp_path):
    page = build_report([write_folder(tmp_path / "run")])
    design = section(page, "design")
    assert absent(page, "design") and "Selection on observables" in design


def test_design_section_shows_a_weak_first_stage_loudly(tmp_path):
    run = write_folder(tmp_path / "run")
    _add_diagnostics(run, first_stage={
        "instruments": ["distance_to_hub"], "n": 2400, "level": "rows", "partial_r2": 0.0021,
        "f": 3.17, "f_kind": "cluster-robust", "n_clusters": 60,
        "coefficients": {"distance_to_hub": 0.052}, "weak": True,
        "stock_yogo_10pct_size": 16.38,
        "warning": "WEAK INSTRUMENT: the first-stage F of distance_to_hub is 3.17"})
    design = section(build_report([run]), "design")
    assert "instrumental variables (distance_to_hub)" in design
    assert "<td>3.170</td>" in design and "<td>60</td>" in design
    assert '<p class="fail">WEAK INSTRUMENT: the first-stage F of distance_to_hub is 3.17' \
        in design
    strong = write_folder(tmp_path / "strong")
    _add_diagnostics(strong, first_stage={"instruments": ["z"], "f": 88.0, "weak": False,
                                          "warning": None})
    assert '<p class="pass">The first stage is strong' in section(build_report([strong]),
                                                                   "design")


def test_design_section_shows_the_pre_trend_verdict_table_and_figure(tmp_path):
    run = write_folder(tmp_path / "run")
    _add_diagnostics(run, pre_trend={"passed": False, "joint_prob": 0.012,
                                     "prob_within_band": 0.31, "band": 0.05,
                                     "rule": "passes when zero lies inside the region"})
    pd.DataFrame({"check": ["event[-2]", "joint"], "estimate": [0.21, 0.012],
                  "hdi_low": [0.11, np.nan], "hdi_high": [0.31, np.nan],
                  "passed": [False, False], "detail": ["hdi", "joint"]}).to_csv(
                      run / "pre_trend.csv", index=False)
    from vagg_bayes.report.figures import forest, Interval

    (run / "event_study.png").write_bytes(forest([Interval("a", 0.0, -1.0, 1.0, "total")],
                                                 xlabel="x"))
    design = section(build_report([run]), "design")
    assert "shock design (event study)" in design
    assert '<span class="fail">' in design and "joint_prob 0.012" in design
    assert "parallel-trends assumption" in design
    assert "<td>event[-2]</td>" in design and "event_study.png" in design
    assert "data:image/png;base64," in design
