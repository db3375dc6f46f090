"""Effects by moderator level: exact algebra on fake posteriors, recovery on the simulator."""

import warnings

import numpy as np
import pytest
from scipy.special import expit

from vagg_bayes.effects.decompose import decompose
from vagg_bayes.effects.heterogeneity import group_ranking, level_rows, moderator_effects
from vagg_bayes.effects.scenario import intervene
from vagg_bayes.effects.total import total_effect
from vagg_bayes.equations import outcome_design
from vagg_bayes.spec import Spec


def _fits(panel, fit_factory, family="gaussian", mediators=True, seed=1):
    from vagg_bayes.equations import mediator_design

    spec = Spec(outcome="y01" if family == "bernoulli" else "y", treatment="t",
                controls=("income", "size"), group="city", time="year", varying_slope=True,
                mediators=("m_firm", "m_city") if mediators else (), moderators=("kind",),
                family=family)
    out = fit_factory(outcome_design(panel, spec), family, seed=seed)
    meds = {m: fit_factory(mediator_design(panel, spec, m)[0], seed=seed + 1 + k)
            for k, m in enumerate(spec.mediators)}
    return spec, out, meds


def _row_slope(fit, rows_design):
    """Per draw and row: the treatment slope by hand (coefficient, group deviation,
    the row's level's interaction)."""
    d = fit.design
    k = d.treatment_index
    pos = {g: j for j, g in enumerate(d.group_labels)}
    groups = np.array([pos[g] for g in rows_design.group_labels[rows_design.group_codes]])
    slope = fit.beta[..., k][..., None] + fit.group_effects[..., groups, d.varying.index(k)]
    inter = d.terms.index("t:kind[y]")
    is_y = rows_design.modifiers[:, rows_design.modifier_terms.index("kind[y]")]
    return slope + fit.beta[..., inter][..., None] * is_y


def test_design_has_the_interaction_and_its_indicator(fake_panel_factory, fit_factory):
    panel = fake_panel_factory()
    spec, out, meds = _fits(panel, fit_factory)
    d = out.design
    assert "kind[y]" in d.terms and "t:kind[y]" in d.terms
    assert d.moderation == (("kind", ("x", "y")),)
    np.testing.assert_array_equal(d.modifiers[:, 0], (panel["kind"] == "y").to_numpy())
    k, j = d.treatment_index, d.interactions[0]
    np.testing.assert_allclose(d.X[:, j], d.X[:, k] * d.modifiers[:, 0])
    # the firm-level moderator is not constant in city-years: the city mediator's
    # equation (one row per city-year) has no interaction
    assert meds["m_city"].design.interactions == ()
    assert meds["m_firm"].design.interactions != ()


@pytest.mark.parametrize("mediators", [False, True])
def test_gaussian_level_effects_by_hand(fake_panel_factory, fit_factory, mediators):
    panel = fake_panel_factory()
    spec, out, meds = _fits(panel, fit_factory, mediators=mediators)
    eff = moderator_effects(out, meds)
    x = level_rows(out.design, "kind", "x")
    y = level_rows(out.design, "kind", "y")
    assert (x ^ y).all()
    slope = _row_slope(out, out.design)
    if mediators:
        for m, f in meds.items():
            b = out.beta[..., out.design.terms.index(m)][..., None]
            a = _row_slope(f, out.design) if f.design.interactions else None
            if a is None:  # city mediator: its slope by the row's city
                pos = {g: j for j, g in enumerate(f.design.group_labels)}
                rows = np.array([pos[g] for g in out.design.group_labels[
                    out.design.group_codes]])
                a = f.beta[..., f.design.treatment_index][..., None] + \
                    f.group_effects[..., rows, 1]
            slope = slope + b * a
    np.testing.assert_allclose(eff["total[kind=x]"], slope[..., x].mean(-1), rtol=1e-10)
    np.testing.assert_allclose(eff["total[kind=y]"], slope[..., y].mean(-1), rtol=1e-10)
    np.testing.assert_allclose(eff["contrast[kind: y - x]"],
                               eff["total[kind=y]"] - eff["total[kind=x]"], rtol=1e-12)
    # the sample-average effect is the row-weighted average of the levels' effects
    total = decompose(out, meds).draws["total"] if mediators else total_effect(out)
    np.testing.assert_allclose(total, (x.sum() * eff["total[kind=x]"]
                                       + y.sum() * eff["total[kind=y]"]) / x.size, rtol=1e-10)
    if mediators:
        assert {"direct[kind=y]", "indirect[kind=y]", "indirect:m_firm[kind=y]"} <= set(eff)


def test_bernoulli_level_effects_by_hand(fake_panel_factory, fit_factory):
    """A continuous treatment: each level's effect is the mean over its rows of
    F(eta + slope_i) - F(eta)."""
    panel = fake_panel_factory()
    spec, out, meds = _fits(panel, fit_factory, family="bernoulli", mediators=False)
    eff = moderator_effects(out, meds)
    eta = out.linear_predictor(slice(None)).reshape(*out.beta.shape[:2], -1)
    change = expit(eta + _row_slope(out, out.design)) - expit(eta)
    for level in ("x", "y"):
        rows = level_rows(out.design, "kind", level)
        np.testing.assert_allclose(eff[f"total[kind={level}]"], change[..., rows].mean(-1),
                                   rtol=1e-10)
    np.testing.assert_allclose(total_effect(out), change.mean(-1), rtol=1e-10)


@pytest.mark.parametrize("family", ["gaussian", "bernoulli"])
def test_shift_by_one_is_the_total_effect_with_moderators(fake_panel_factory, fit_factory,
                                                          family):
    panel = fake_panel_factory()
    spec, out, meds = _fits(panel, fit_factory, family=family,
                            mediators=family == "gaussian")
    change = intervene(out, meds, np.ones(out.design.n))
    total = decompose(out, meds).draws["total"]
    np.testing.assert_allclose(change.overall["total"], total, rtol=1e-10)


def test_group_ranking_probabilities(fake_panel_factory, fit_factory):
    panel = fake_panel_factory(n_groups=14)
    spec, out, meds = _fits(panel, fit_factory, mediators=False)
    table = group_ranking(out, meds, "city", top=10)
    assert len(table) == 14 and table["rank_mean"].is_monotonic_increasing
    assert table.columns[0] == "city" and "prob_top10" in table
    # ten of fourteen groups are in the top ten in every draw
    assert table["prob_top10"].sum() == pytest.approx(10.0)
    assert ((table["rank_low"] >= 1) & (table["rank_high"] <= 14)).all()


@pytest.mark.slow
def test_simulator_heterogeneity_is_recovered():
    """State-owned firms get +1.0 on va's direct effect: P(state > foreign) > 0.9 and every
    level's 94 % HDI covers its true total effect."""
    from vagg_bayes import Analysis
    from vagg_bayes.bayes.diagnostics import ConvergenceWarning
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.data.simulate import simulate_panel

    data, truth = simulate_panel(n_firms=1500, n_years=5, n_cities=40, n_provinces=10,
                                 seed=2, heterogeneity={"ownership": {"state": 1.0}})
    spec = Spec(outcome="resilience", treatment="va", group="city_id", time="year",
                controls=("gdp_pc_ln", "region", "size_ln", "age_ln", "leverage",
                          "shock_exposure", "ownership"), moderators=("ownership",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = Analysis(spec, SamplerSettings(draws=400, tune=400, random_seed=3)).fit(data)
    effects = result.summary("effects").set_index("effect")
    true = truth["heterogeneity"]["ownership"]
    for level in ("foreign", "private", "state"):
        row = effects.loc[f"total[ownership={level}]"]
        assert row.hdi_low <= true[level]["resilience_total"] <= row.hdi_high, (level, row)
    assert effects.loc["contrast[ownership: state - foreign]", "prob_positive"] > 0.9
    print(effects.filter(like="ownership", axis=0)[["mean", "hdi_low", "hdi_high",
                                                    "prob_positive"]])
    assert effects["r_hat"].max() < 1.02
    ranking = result.summary("group_ranking")
    assert len(ranking) == 40 and "prob_top10" in ranking
