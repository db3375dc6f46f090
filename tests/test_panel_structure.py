"""Unit (firm) effects and group-time (city-year) shocks: the mechanism paths on firm panels.

The panels (``firm_panel_factory`` in conftest) have a persistent unobserved plant quality
that raises both the mediator and the outcome, so a model without unit effects lets the
mediator's path absorb it.
"""

import numpy as np
import pytest

from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.pipeline import estimate
from vagg_bayes.spec import Spec

SETTINGS = SamplerSettings(draws=1000, tune=1000, chains=2, random_seed=3)


def _spec(**changes):
    base = Spec(outcome="exp_res", treatment="dig", controls=("scale_ln",),
                mediators=("cost_eff",), unit="plant", group="town", time="period")
    return base.with_(**changes)


def _covers(row, value):
    return row["hdi_low"] <= value <= row["hdi_high"]


@pytest.mark.slow
def test_default_unit_effects_cover_the_paths_and_none_misses_them(firm_panel_factory):
    data, truth = firm_panel_factory(seed=11)
    default = estimate(data, _spec(), settings=SETTINGS).summary("effects").set_index("effect")
    for name in ("direct", "indirect", "total"):
        assert _covers(default.loc[name], truth[name]), (name, default.loc[name].to_dict())
    assert default.loc["indirect", "r_hat"] < 1.01

    naive = estimate(data, _spec(unit_effects="none"), settings=SETTINGS)
    naive = naive.summary("effects").set_index("effect")
    # plant quality raises the mediator and the outcome: the path absorbs it
    assert naive.loc["indirect", "hdi_low"] > truth["indirect"]
    assert naive.loc["direct", "hdi_high"] < truth["direct"]


@pytest.mark.slow
def test_mediator_path_equals_two_way_fixed_effects(firm_panel_factory):
    """Without town-period shocks the mediator's within-plant slope is the TWFE estimate."""
    linearmodels = pytest.importorskip("linearmodels")
    data, truth = firm_panel_factory(seed=5, cell_sd=0.0)
    result = estimate(data, _spec(), settings=SETTINGS)
    coef = result.summary("coefficients").set_index("term")
    frame = data.set_index(["plant", "period"])
    twfe = linearmodels.PanelOLS(frame["exp_res"], frame[["dig", "cost_eff", "scale_ln"]],
                                 entity_effects=True, time_effects=True).fit()
    b_hat, se = float(twfe.params["cost_eff"]), float(twfe.std_errors["cost_eff"])
    post = coef.loc["cost_eff"]
    mcse = post["sd"] / np.sqrt(post["ess_bulk"])
    assert abs(post["mean"] - b_hat) < 4 * mcse + 0.05 * se, (post["mean"], b_hat, mcse, se)
    assert post["sd"] == pytest.approx(se, rel=0.15)
    # the between-plant slope is far from the within one: the contrast says so
    wb = result.summary("within_between")
    row = wb[(wb.term == "cost_eff") & (wb.slope == "difference")].iloc[0]
    assert row["hdi_low"] > 0


@pytest.mark.slow
def test_group_time_shocks_widen_the_interval_of_a_group_time_treatment(firm_panel_factory):
    data, truth = firm_panel_factory(seed=7, cell_sd=0.5, n_towns=40, n_plants=25)
    spec = Spec(outcome="exp_res", treatment="dig", controls=("scale_ln",), unit="plant",
                group="town", time="period")
    with_cells = estimate(data, spec, settings=SETTINGS)
    without = estimate(data, spec.with_(group_time_effects=False), settings=SETTINGS)
    sd_with = with_cells.summary("effects").set_index("effect").loc["total", "sd"]
    sd_without = without.summary("effects").set_index("effect").loc["total", "sd"]
    assert sd_with > 1.5 * sd_without
    coef = with_cells.summary("coefficients").set_index("term")
    assert _covers(coef.loc["sd(town:period)"], 0.5)
    assert coef.loc["design_effect(town:period)", "mean"] > 3
