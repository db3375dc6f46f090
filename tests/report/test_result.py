"""EstimateResult: summary() is the single source of the CSV files and every rendering."""

import io

import arviz as az
import pandas as pd
import pytest



@pytest.fixture
def fitted(fitted_small):
    return fitted_small


@pytest.mark.slow
def test_csv_files_are_the_summary(fitted, tmp_path):
    fitted.write(tmp_path)
    for table, name in (("effects", "effects.csv"), ("coefficients", "coefficients.csv")):
        on_disk = pd.read_csv(tmp_path / name)
        pd.testing.assert_frame_equal(on_disk, fitted.summary(table), check_exact=True)
    idata = az.from_netcdf(tmp_path / "posterior.nc")
    assert "log_likelihood" in idata.groups() and "effects" in idata.posterior.data_vars
    total = idata.posterior["effects"].sel(effect="total").values  # the draws themselves
    assert total.shape == fitted.effect_draws["total"].shape
    assert (total == fitted.effect_draws["total"]).all()
    assert idata.log_likelihood["y"].sizes["group"] == 15


@pytest.mark.slow
def test_renderings_and_tables(fitted):
    md = fitted.to_markdown()
    assert md.splitlines()[0].startswith("| effect | mean |") and "| total |" in md
    assert r"\begin{tabular}" in fitted.to_latex("coefficients")
    assert "<table>" in fitted._repr_html_()
    priors = fitted.summary("priors")
    assert {"dose", "sigma", "sd(school)"} <= set(priors.parameter)
    groups = fitted.summary("group_effects")
    assert len(groups) == 15 and groups.quantity.iloc[0] == "intercept"
    text = str(fitted)
    assert "Diagnostics pass" in text or "DIAGNOSTICS FAIL" in text
    with pytest.raises(KeyError, match="valid tables"):
        fitted.summary("nope")


@pytest.mark.slow
def test_summary_is_a_copy(fitted):
    frame = fitted.summary("effects")
    frame.loc[0, "mean"] = 99.0
    assert fitted.summary("effects").loc[0, "mean"] != 99.0
    buf = io.StringIO()
    fitted.summary("effects").to_csv(buf, index=False)
    assert buf.getvalue().startswith("effect,mean,sd,hdi_low,hdi_high,prob_positive,r_hat,")
