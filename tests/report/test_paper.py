"""`vagg-bayes table`: Bayesian columns from the results folders, TWFE columns that are
linearmodels' PanelOLS on the same data, three formats, bad folders and data exit 2."""

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.cli import main
from vagg_bayes.report.paper import paper_table

SPEC = """
[data]
unit = "firm"
group = "region"
time = "yr"

[variables]
outcome = "y_out"
treatment = "treat"
controls = ["size_x", "regime"]
{mediators}
[model]
family = "gaussian"
"""


@pytest.fixture(scope="module")
def folders(tmp_path_factory, firm_panel_factory):
    """(baseline folder, mediation folder, data path, data): tiny real estimates."""
    root = tmp_path_factory.mktemp("paper")
    frame, _ = firm_panel_factory(n_towns=12, n_plants=5, n_periods=4, seed=3)
    rng = np.random.default_rng(0)
    frame = frame.rename(columns={"plant": "firm", "town": "region", "period": "yr",
                                  "dig": "treat", "cost_eff": "med_a", "scale_ln": "size_x",
                                  "exp_res": "y_out"})
    frame["regime"] = rng.choice(["open", "closed", "mixed"], len(frame))  # varies in firms
    data = root / "firms.csv"
    frame.to_csv(data, index=False)
    out = {}
    for name, mediators in (("base", ""), ("med", 'mediators = ["med_a"]')):
        spec = root / f"{name}.toml"
        spec.write_text(SPEC.format(mediators=mediators))
        code = main([str(a) for a in ["estimate", spec, "--data", data, "--out",
                                      root / name, "--draws", "100", "--tune", "100",
                                      "--seed", "1", "--quiet"]])
        assert code == 0
        out[name] = root / name
    return out["base"], out["med"], data, frame


def _panelols(frame, y, columns):
    """PanelOLS run directly: firm and year fixed effects, SEs clustered by region."""
    from linearmodels.panel import PanelOLS

    f = frame.set_index(["firm", "yr"])
    X = f[[c for c in columns if c != "regime"]].astype(float)
    if "regime" in columns:
        for level in ["mixed", "open"]:  # every level but the first in sorted order
            X[f"regime[{level}]"] = (f["regime"] == level).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PanelOLS(f[y], X, entity_effects=True, time_effects=True).fit(
            cov_type="clustered", clusters=f["region"])


def _column(summary, label, estimator):
    part = summary[(summary["equation"] == label) & (summary["estimator"] == estimator)]
    assert part["column"].nunique() >= 1
    return part


@pytest.mark.slow
def test_twfe_columns_are_panelols_on_the_same_data(folders):
    base, med, _, frame = folders
    table = paper_table([base, med])
    summary = table.summary()
    cases = [(base, "y_out", ["treat", "size_x", "regime"]),
             (med, "y_out", ["treat", "med_a", "size_x", "regime"]),
             (med, "med_a", ["treat", "size_x", "regime"])]
    for folder, y, columns in cases:
        direct = _panelols(frame, y, columns)
        part = summary[(summary["folder"] == str(folder)) & (summary["equation"] == y)
                       & (summary["estimator"] == "TWFE")
                       & (summary["section"] == "coefficients")].set_index("row")
        assert set(direct.params.index) <= set(part.index)
        for term in direct.params.index:
            assert abs(part.loc[term, "estimate"] - direct.params[term]) < 1e-8, (y, term)
            assert abs(part.loc[term, "se"] - direct.std_errors[term]) < 1e-8, (y, term)
            assert abs(part.loc[term, "p_value"] - direct.pvalues[term]) < 1e-8
        stats = summary[(summary["folder"] == str(folder)) & (summary["equation"] == y)
                        & (summary["estimator"] == "TWFE")].set_index("row")
        assert stats.loc["N", "estimate"] == direct.nobs == len(frame)
        assert stats.loc["groups (region)", "estimate"] == frame["region"].nunique()
        assert stats.loc["firm", "value"] == "yes" and stats.loc["yr", "value"] == "yes"
        assert stats.loc["SE clustered by", "value"] == "region"


@pytest.mark.slow
def test_bayesian_columns_are_the_results_files(folders):
    base, med, _, _ = folders
    summary = paper_table([base, med]).summary()
    # columns: base outcome (1, 2); mediation outcome (3, 4) and mediator (5, 6)
    assert list(dict.fromkeys(summary["column"])) == [
        "(1) y_out", "(2) y_out", "(3) y_out", "(4) y_out", "(5) med_a", "(6) med_a"]
    coefs = pd.read_csv(med / "coefficients.csv").set_index("term")
    effects = pd.read_csv(med / "effects.csv").set_index("effect")
    diag = json.loads((med / "diagnostics.json").read_text())["equations"]
    mediator = summary[summary["column"] == "(5) med_a"].set_index("row")
    for term in ("treat", "size_x", "regime[open]"):
        row, ref = mediator.loc[term], coefs.loc[f"med_a~{term}"]
        assert (row["estimate"], row["low"], row["high"], row["prob_positive"]) == (
            ref["mean"], ref["hdi_low"], ref["hdi_high"], ref["prob_positive"])
    outcome = summary[summary["column"] == "(3) y_out"].set_index("row")
    for name in ("total", "direct", "indirect", "indirect:med_a"):
        assert outcome.loc[name, "estimate"] == effects.loc[name, "mean"]
        assert outcome.loc[name, "low"] == effects.loc[name, "hdi_low"]
    assert outcome.loc["med_a", "estimate"] == coefs.loc["med_a", "mean"]
    assert "med_a" not in mediator.index  # a mediator is no regressor of its own equation
    assert outcome.loc["max r_hat", "estimate"] == diag["outcome"]["max_r_hat"]
    assert mediator.loc["min ESS (bulk)", "estimate"] == diag["med_a"]["min_ess_bulk"]
    assert outcome.loc["divergences", "estimate"] == diag["outcome"]["divergences"]
    assert outcome.loc["N", "estimate"] == json.loads(
        (med / "manifest.json").read_text())["n_rows"]
    # rows: the treatment first, then the mediator, then the controls
    coef_rows = list(dict.fromkeys(summary.loc[summary["section"] == "coefficients", "row"]))
    assert coef_rows[:3] == ["treat", "med_a", "size_x"]


@pytest.mark.slow
def test_renders_in_three_formats(folders, tmp_path, capsys):
    base, med, _, _ = folders
    table = paper_table([base, med])
    treat = table.summary().query("column == '(1) y_out' and row == 'treat'").iloc[0]
    mean = f"{treat['estimate']:.3f}"
    hdi = f"[{treat['low']:.3f}, {treat['high']:.3f}]"
    md = table.to_markdown()
    assert md.startswith("|  | (1) y_out | (2) y_out |") and mean in md and hdi in md
    assert "P(>0)=" in md
    tex = table.to_latex()
    assert tex.startswith(r"\begin{table}") and r"\toprule" in tex and hdi in tex
    assert r"med\_a" in tex and "P(+)=" in tex
    assert ">" not in "\n".join(line for line in tex.splitlines()
                                if not line.startswith("%"))
    page = table.to_html()
    assert page.startswith("<table>") and f"<td>{mean}</td>" in page
    for fmt, ending in (("markdown", "md"), ("latex", "tex"), ("html", "html")):
        target = tmp_path / f"table.{ending}"
        code = main([str(a) for a in ["table", base, med, "--format", fmt, "--out", target]])
        assert code == 0
        assert target.read_text() == table.render(fmt)
    capsys.readouterr()
    code = main(["table", str(base)])
    captured = capsys.readouterr()
    assert code == 0 and captured.out.startswith("|  | (1) y_out | (2) y_out |")


def test_bad_folders_exit_2(tmp_path, capsys):
    code = main(["table", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "nowhere" in err and "does not exist" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "effects.csv").write_text("effect,mean\n")
    code = main(["table", str(empty)])
    err = capsys.readouterr().err
    assert code == 2 and "not a results folder" in err and "coefficients.csv" in err


@pytest.mark.slow
def test_data_found_by_hash_or_exit_2(folders, tmp_path, capsys):
    base, _, data, frame = folders
    copy = tmp_path / "base"
    shutil.copytree(base, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["data_file"] = str(tmp_path / "moved.csv")  # the data file was moved away
    (copy / "manifest.json").write_text(json.dumps(manifest))
    code = main(["table", str(copy)])
    err = capsys.readouterr().err
    assert code == 2 and "moved.csv (missing)" in err and "--data FILE" in err
    # --data: the same rows, even as Parquet, are accepted (validated rows hash)
    parquet = tmp_path / "same.parquet"
    frame.to_parquet(parquet, index=False)
    assert paper_table([copy], data=parquet).summary().equals(
        paper_table([base]).summary().assign(folder=str(copy)))
    changed = tmp_path / "changed.csv"
    frame.assign(y_out=frame["y_out"] + 1.0).to_csv(changed, index=False)
    code = main(["table", str(copy), "--data", str(changed)])
    err = capsys.readouterr().err
    assert code == 2 and "changed.csv (different data" in err
    # --no-twfe: the Bayesian columns alone, no data needed
    code = main(["table", str(copy), "--no-twfe"])
    captured = capsys.readouterr()
    assert code == 0 and "TWFE" not in captured.out.splitlines()[2]
    assert paper_table([copy], twfe=False).summary()["estimator"].unique().tolist() == ["Bayes"]


def test_city_level_equation_is_panelols_on_cells(firm_panel_factory):
    """A mediator constant within city-years: one row per cell, city and year effects."""
    from linearmodels.panel import PanelOLS

    from vagg_bayes.report.paper import twfe_equation
    from vagg_bayes.spec import Spec

    frame, _ = firm_panel_factory(n_towns=12, n_plants=5, n_periods=4, seed=3)
    frame = frame.rename(columns={"plant": "firm", "town": "region", "period": "yr",
                                  "dig": "treat", "cost_eff": "med_a", "scale_ln": "size_x",
                                  "exp_res": "y_out"})
    frame = frame.assign(
        m_city=frame.groupby(["region", "yr"])["med_a"].transform("mean"),
        gdp=frame.groupby(["region", "yr"])["size_x"].transform("mean"))
    spec = Spec(outcome="y_out", treatment="treat", controls=("gdp", "size_x"),
                mediators=("m_city",), unit="firm", group="region", time="yr")
    fit = twfe_equation(frame, spec, "m_city", level="group-time",
                        regressors=["treat", "gdp"])
    cells = frame.groupby(["region", "yr"], sort=True).first().reset_index()
    f = cells.assign(cluster=cells["region"]).set_index(["region", "yr"])
    direct = PanelOLS(f["m_city"], f[["treat", "gdp"]], entity_effects=True,
                      time_effects=True).fit(cov_type="clustered", clusters=f["cluster"])
    assert fit.nobs == len(cells) == frame["region"].nunique() * frame["yr"].nunique()
    np.testing.assert_allclose(fit.params[["treat", "gdp"]], direct.params, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.std_errors[["treat", "gdp"]], direct.std_errors, rtol=0,
                               atol=1e-8)
    assert fit.effects == {"region": "yes", "yr": "yes"}


@pytest.mark.slow
def test_nested_estimate_folders_follow_their_parent(folders, tmp_path):
    base, med, _, _ = folders
    parent = tmp_path / "demo_out"
    shutil.copytree(base, parent)
    shutil.copytree(med, parent / "mechanisms")
    (parent / "scenarios").mkdir()  # a results folder that is not an estimate: skipped
    (parent / "scenarios" / "scenario.csv").write_text("group,mean\nall,0.1\n")
    summary = paper_table([parent], twfe=False).summary()
    assert list(dict.fromkeys(summary["column"])) == ["(1) y_out", "(2) y_out", "(3) med_a"]
    assert list(dict.fromkeys(summary["folder"])) == [str(parent), str(parent / "mechanisms")]
