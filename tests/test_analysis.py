"""The analysis object: fit once, refit with frozen encoding and priors, predict, intervene."""

import warnings

import numpy as np
import pandas as pd
import pytest

from vagg_bayes import Analysis, DataError
from vagg_bayes.bayes.diagnostics import ConvergenceWarning
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.spec import Spec

SETTINGS = SamplerSettings(draws=1000, tune=700, chains=2, random_seed=4)


def _spec(**changes):
    base = Spec(outcome="exp_res", treatment="dig", controls=("scale_ln",),
                mediators=("cost_eff",), unit="plant", group="town", time="period")
    return base.with_(**changes)


@pytest.fixture(scope="module")
def fitted(firm_panel_factory):
    data, truth = firm_panel_factory(seed=2, n_towns=30, n_plants=10)
    analysis = Analysis(_spec(), SETTINGS)
    return analysis, analysis.fit(data), data


@pytest.mark.slow
def test_refit_on_the_same_data_and_seed_reproduces_the_fit(fitted):
    analysis, first, data = fitted
    again = analysis.refit(data)
    for name in first.effect_draws:
        np.testing.assert_array_equal(first.effect_draws[name], again.effect_draws[name])
    np.testing.assert_array_equal(first.fits["outcome"].beta, again.fits["outcome"].beta)


@pytest.mark.slow
def test_refit_warm_starts_from_the_first_adaptation(fitted, monkeypatch):
    """A refit skips the cold adaptation; warm=False runs it again and, on the first data
    and seed, gives the first fit's draws too."""
    from vagg_bayes.bayes.sample import ChainSampler

    analysis, first, data = fitted
    calls = []
    original = ChainSampler.adapt
    monkeypatch.setattr(ChainSampler, "adapt",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    permuted = data.assign(dig=np.random.default_rng(3).permutation(data["dig"].to_numpy()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        analysis.refit(permuted, seed=analysis.replicate_seeds(2)[1])
    assert calls == []
    cold = analysis.refit(data, warm=False)
    assert len(calls) == len(analysis._models)  # one cold adaptation per sampled equation
    np.testing.assert_array_equal(first.effect_draws["total"], cold.effect_draws["total"])


@pytest.mark.slow
def test_refit_freezes_encoding_and_priors_and_finds_no_effect_in_a_placebo(fitted):
    analysis, first, data = fitted
    permuted = data.assign(dig=np.random.default_rng(1).permutation(data["dig"].to_numpy()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        placebo = analysis.refit(permuted, seed=analysis.replicate_seeds(1)[0])
    pd.testing.assert_frame_equal(first.summary("priors"), placebo.summary("priors"))
    assert first.fits["outcome"].design.terms == placebo.fits["outcome"].design.terms
    np.testing.assert_array_equal(first.fits["outcome"].design.x_sd,
                                  placebo.fits["outcome"].design.x_sd)
    total = placebo.summary("effects").set_index("effect").loc["total"]
    assert total["hdi_low"] < 0 < total["hdi_high"]
    real = first.summary("effects").set_index("effect").loc["total"]
    assert real["hdi_low"] > 0


def test_replicate_seeds_never_collide():
    analysis = Analysis(_spec(), SETTINGS)
    seeds = analysis.replicate_seeds(200)
    states = {tuple(s.generate_state(4)) for s in seeds}
    assert len(states) == 200


def test_refit_needs_a_fit_first(firm_panel_factory):
    data, _ = firm_panel_factory(n_towns=5, n_plants=3)
    with pytest.raises(RuntimeError, match="call fit"):
        Analysis(_spec(), SETTINGS).refit(data)


@pytest.mark.slow
def test_refit_rejects_a_category_level_the_first_fit_did_not_see(firm_panel_factory):
    data, _ = firm_panel_factory(seed=3, n_towns=12, n_plants=6)
    data = data.assign(kind=np.where(data["plant"] % 2 == 0, "a", "b"))
    spec = Spec(outcome="exp_res", treatment="dig", controls=("kind",), unit="plant",
                group="town", time="period", unit_effects="random")
    analysis = Analysis(spec, SamplerSettings(draws=200, tune=200, random_seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        analysis.fit(data)
        subset = analysis.refit(data[data["town"] < 8])  # fewer groups: same model
    assert subset.fits["outcome"].design.n_groups == 8
    with pytest.raises(DataError, match=r"kind\[c\].*did not see"):
        analysis.refit(data.assign(kind=np.where(data["plant"] % 3 == 0, "c", data["kind"])))


@pytest.mark.slow
def test_intervention_raising_the_treatment_by_one_gives_the_total_effect(fitted):
    _, result, _ = fitted
    change = result.intervene(shift=1.0)
    np.testing.assert_allclose(change.overall["total"], result.effect_draws["total"],
                               rtol=1e-12, atol=1e-12)
    parts = change.overall["direct"] + change.overall["through:cost_eff"]
    np.testing.assert_allclose(parts, change.overall["total"], rtol=1e-12)
    table = change.summary("town", threshold=0.1)
    assert list(table["town"][:2]) == ["all", "0"] and len(table) == 31
    # only three towns raised: the overall change is their share of the rows
    some = result.intervene(shift=1.0, groups=[0, 1, 2])
    share = result.fits["outcome"].design.group_codes.__lt__(3).mean()
    np.testing.assert_allclose(some.overall["total"], share * change.by_group["total"][..., :3]
                               .mean(axis=-1), rtol=1e-9)
    with pytest.raises(ValueError, match="not in the data"):
        result.intervene(shift=1.0, groups=["nowhere"])


@pytest.mark.slow
def test_bernoulli_intervention_is_the_g_formula_and_refits_reuse_the_model(
        firm_panel_factory, monkeypatch):
    from vagg_bayes.bayes import fit as fit_module

    data, _ = firm_panel_factory(seed=8, n_towns=20, n_plants=10, cell_sd=0.0)
    binary = data.assign(exp_res=(data["exp_res"] > data["exp_res"].median()).astype(int))
    spec = _spec(family="bernoulli", group_time_effects=None)
    analysis = Analysis(spec, SamplerSettings(draws=300, tune=300, random_seed=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = analysis.fit(binary)
    change = result.intervene(shift=1.0)
    np.testing.assert_allclose(change.overall["total"], result.effect_draws["total"],
                               rtol=1e-10)
    # Refits with the same groups update the compiled logit model instead of rebuilding it
    # (no new mediator model either: the Gaussian one is reused), and reproduce the fit.
    builds = []
    original = fit_module.build_logit_model
    monkeypatch.setattr(fit_module, "build_logit_model",
                        lambda *a, **k: builds.append(1) or original(*a, **k))
    # each town's treatment series given to another town (the treatment stays a town-year
    # measure, so the columns keep their roles)
    series = binary.groupby(["town", "period"])["dig"].first()
    towns = np.sort(binary["town"].unique())
    swap = dict(zip(towns, np.random.default_rng(5).permutation(towns), strict=True))
    permuted = binary.assign(dig=[series[(swap[t], p)] for t, p in
                                  zip(binary["town"], binary["period"], strict=True)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        placebo = analysis.refit(permuted, seed=analysis.replicate_seeds(1)[0])
        again = analysis.refit(binary)
    assert builds == []
    assert not np.array_equal(placebo.effect_draws["total"], result.effect_draws["total"])
    np.testing.assert_array_equal(again.effect_draws["total"], result.effect_draws["total"])
    # fewer groups: a new model (same priors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        analysis.refit(binary[binary["town"] < 12])
    assert builds == [1]


@pytest.mark.slow
def test_predictive_intervals_cover_held_out_firms(firm_panel_factory):
    data, _ = firm_panel_factory(seed=21, n_towns=40, n_plants=16, cell_sd=0.35)
    spec = Spec(outcome="exp_res", treatment="dig", controls=("scale_ln",), unit="plant",
                group="town", time="period")
    held_town = data["town"] >= 34
    held_plant = (data["plant"] % 8 == 0) & ~held_town
    train = data[~held_town & ~held_plant]
    result = Analysis(spec, SETTINGS).fit(train)
    for name, rows in (("seen towns", held_plant), ("held-out towns", held_town)):
        new = data[rows]
        draws = result.predict(new, seed=3)
        low, high = np.quantile(draws, [0.03, 0.97], axis=0)
        y = new["exp_res"].to_numpy()
        coverage = np.mean((y >= low) & (y <= high))
        assert 0.90 <= coverage <= 0.98, (name, coverage, len(y))
