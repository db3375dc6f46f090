"""Policy scenarios on fake posteriors: the table, the groups, the three kinds of change."""

import numpy as np
import pytest

from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.effects.decompose import decompose
from vagg_bayes.effects.policy import CONTRACT, price_scenario
from vagg_bayes.equations import mediator_design, outcome_design
from vagg_bayes.errors import DataError, SpecError
from vagg_bayes.report.result import EstimateResult
from vagg_bayes.spec import Spec


def _result(panel, fit_factory, family="gaussian", mediators=("m_firm",)):
    spec = Spec(outcome="y01" if family == "bernoulli" else "y", treatment="t",
                controls=("income",), group="city", time="year", varying_slope=True,
                mediators=mediators, family=family)
    out = fit_factory(outcome_design(panel, spec), family, seed=4)
    meds = {m: fit_factory(mediator_design(panel, spec, m)[0], seed=5) for m in mediators}
    total = decompose(out, meds).draws["total"]
    return EstimateResult(spec=spec, settings=SamplerSettings(), fits={"outcome": out, **meds},
                          effect_draws={"total": total})


def test_shift_by_one_everywhere_is_the_total_effect(fake_panel_factory, fit_factory):
    panel = fake_panel_factory()
    result = _result(panel, fit_factory)
    table = price_scenario(result, shift=1.0).table
    assert list(table.columns[:len(CONTRACT)]) == CONTRACT
    assert table["group"].tolist() == ["all", *(str(g) for g in sorted(panel.city.unique()))]
    total = np.asarray(result.effect_draws["total"])
    assert table.loc[0, "mean"] == pytest.approx(total.mean(), rel=1e-12)
    assert table.loc[0, "prob_positive"] == pytest.approx((total > 0).mean())
    assert (table["changed_rows"] == table["rows"]).all()
    # one mechanism: its share is the whole indirect part's
    assert "share:m_firm" in table


def test_groups_and_threshold(fake_panel_factory, fit_factory):
    panel = fake_panel_factory()
    result = _result(panel, fit_factory, mediators=())
    full = price_scenario(result, shift=1.0).table.set_index("group")
    some = price_scenario(result, shift=1.0, groups=[2, "5"], threshold=0.3).table
    some = some.set_index("group")
    # the chosen groups change as before, the others not at all
    assert some.loc["2", "mean"] == pytest.approx(full.loc["2", "mean"])
    assert some.loc["0", "mean"] == 0.0 and some.loc["0", "changed_rows"] == 0
    share = (full.loc["2", "rows"] * full.loc["2", "mean"]
             + full.loc["5", "rows"] * full.loc["5", "mean"]) / full.loc["all", "rows"]
    assert some.loc["all", "mean"] == pytest.approx(share)
    assert some.loc["2", "prob_above"] <= some.loc["2", "prob_positive"]


def test_unknown_group_is_a_data_error(fake_panel_factory, fit_factory):
    result = _result(fake_panel_factory(), fit_factory)
    with pytest.raises(DataError, match=r"'99'.*not values of 'city'"):
        price_scenario(result, shift=1.0, groups=["99"])
    with pytest.raises(SpecError, match="exactly one"):
        price_scenario(result, shift=1.0, set_to=2.0)
    with pytest.raises(SpecError, match="between 0 and 1"):
        price_scenario(result, to_quantile=1.5)


def test_to_quantile_raises_only_rows_below_it(fake_panel_factory, fit_factory):
    panel = fake_panel_factory()
    result = _result(panel, fit_factory, mediators=())
    priced = price_scenario(result, to_quantile=0.5)
    t = panel["t"].to_numpy()
    below = int((t < np.quantile(t, 0.5)).sum())
    assert priced.table.loc[0, "changed_rows"] == below
    assert "50% quantile" in priced.description
    # set_to the maximum everywhere moves every row but the maximal ones
    assert price_scenario(result, set_to=t.max()).table.loc[0, "changed_rows"] == \
        int((t < t.max()).sum())


def test_bernoulli_saved_units(fake_panel_factory, fit_factory):
    panel = fake_panel_factory()
    result = _result(panel, fit_factory, family="bernoulli", mediators=())
    panel = panel.assign(firm=np.arange(len(panel)) % 50)
    result = EstimateResult(spec=result.spec.with_(unit="firm"), settings=result.settings,
                            fits=result.fits, effect_draws=result.effect_draws)
    table = price_scenario(result, shift=0.5, data=panel).table
    assert {"units", "saved_mean", "saved_hdi_low", "saved_hdi_high"} <= set(table)
    assert table.loc[0, "units"] == 50
    np.testing.assert_allclose(table["saved_mean"], table["mean"] * table["units"])
    assert (table["saved_hdi_low"] <= table["saved_mean"]).all()
