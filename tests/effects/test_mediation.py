"""Joint mediation: equation set-up, the pipeline with a stand-in sampler, and recovery."""

import itertools

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.effects.mediation import cell_frame, mediator_design, mediator_level


def test_mediator_level_detects_city_mediators(panel, spec):
    assert mediator_level(panel, spec, "m_firm") == "row"
    assert mediator_level(panel, spec, "m_city") == "group-time"
    assert mediator_level(panel, spec.with_(time=None), "m_city") == "row"
    const = panel.assign(m_city=panel.groupby("city").m_city.transform("first"))
    assert mediator_level(const, spec.with_(time=None), "m_city") == "group"
    no_group = spec.with_(group=None, varying_slope=False)
    assert mediator_level(panel, no_group, "m_city") == "row"


def test_city_mediator_is_fitted_on_city_year_rows(panel, spec):
    frame, regressors = cell_frame(panel, spec)
    assert len(frame) == panel.groupby(["city", "year"]).ngroups == 32
    assert regressors == ["t", "income"]  # size and kind vary within cells
    design, note = mediator_design(panel, spec, "m_city")
    assert design.n == 32 and note["level"] == "group-time"
    assert note["dropped_controls"] == ["size", "kind"]
    assert design.terms[:3] == ("Intercept", "t", "income")
    assert any(term.startswith("year[") for term in design.terms)
    assert design.varying == (0, 1)  # varying slope kept
    firm, note = mediator_design(panel, spec, "m_firm")
    assert firm.n == len(panel) and note["level"] == "row"


def test_city_mediator_with_firm_level_treatment_uses_every_row(panel, spec):
    varied = panel.assign(t=panel.t + np.random.default_rng(0).normal(0, 0.1, len(panel)))
    design, note = mediator_design(varied, spec, "m_city")
    assert design.n == len(panel) and note["level"] == "row" and "treatment" in note["note"]


@pytest.fixture
def stand_in_sampler(monkeypatch, fit_factory):
    """Replace the sampler by random draws (each equation its own seed)."""
    from vagg_bayes.bayes.fit import EquationModel

    seeds = itertools.count(10)

    def fake(self, design=None, **kwargs):
        design = self.design if design is None else design
        return fit_factory(design, self.family, C=2, D=60, seed=next(seeds), sd=0.05)

    monkeypatch.setattr(EquationModel, "fit", fake)


FEW_DRAWS = pytest.mark.filterwarnings(  # 60 stand-in draws fail the ESS check, as they should
    "ignore::vagg_bayes.bayes.diagnostics.ConvergenceWarning"
)


@FEW_DRAWS
@pytest.mark.parametrize("family", ["gaussian", "bernoulli"])
def test_estimate_with_mediators_writes_every_table(stand_in_sampler, panel, spec, family,
                                                    tmp_path):
    from vagg_bayes.pipeline import estimate

    data = panel.assign(y=panel.y01) if family == "bernoulli" else panel
    spec = spec.with_(family=family)
    result = estimate(data, spec, settings=SamplerSettings(draws=60, chains=2))
    assert list(result.fits) == ["outcome", "m_firm", "m_city"]
    effects = result.summary("effects")
    rows = ["total", "direct", "indirect", "indirect:m_firm", "indirect:m_city"]
    if family == "bernoulli":
        rows += ["direct:control", "direct:treated", "indirect:control", "indirect:treated",
                 "indirect:m_firm:control", "indirect:m_firm:treated",
                 "indirect:m_city:control", "indirect:m_city:treated"]
    assert list(effects.effect) == rows
    assert set(result.tables) == {"sensitivity", "classical", "group_mediation"}
    sens = result.summary("sensitivity")
    assert list(sens.mediator) == ["m_firm", "m_city"]
    scale = "outcome scale" if family == "gaussian" else "latent logit scale"
    assert set(sens.scale) == {scale}
    classical = result.summary("classical")
    assert list(classical.path) == ["m_firm", "m_city", "indirect"]
    # The Bayesian columns beside the classical ones: each path's posterior mean and HDI,
    # checked against the draws themselves (not against another summary of them) ...
    draws = result.effect_draws
    np.testing.assert_allclose(
        classical.bayes_mean,
        [np.mean(draws[name]) for name in ("indirect:m_firm", "indirect:m_city", "indirect")],
        rtol=1e-12)
    assert np.all(classical.bayes_hdi_low <= classical.bayes_mean)
    assert np.all(classical.bayes_mean <= classical.bayes_hdi_high)
    if family == "gaussian":
        # ... and those draws by hand: b_m times the row average of a_m + u_m[city]
        outcome = result.fits["outcome"]
        cities = outcome.design.group_labels[outcome.design.group_codes]
        for name in ("m_firm", "m_city"):
            fit = result.fits[name]
            b = outcome.beta[..., outcome.design.terms.index(name)]
            pos = {g: j for j, g in enumerate(fit.design.group_labels)}
            u = fit.group_effects[..., [pos[g] for g in cities], 1]
            a = fit.beta[..., fit.design.treatment_index][..., None] + u
            np.testing.assert_allclose(draws[f"indirect:{name}"], b * a.mean(axis=-1),
                                       rtol=1e-12)
    groups = result.summary("group_mediation")
    assert len(groups) == 2 * 8 and set(groups.effect) == {"indirect", "direct"}
    assert sorted(groups[groups.effect == "direct"]["rank"]) == list(range(1, 9))
    assert result.meta["mediators"]["m_city"]["level"] == "group-time"
    assert result.meta["classical_note"].endswith(".")
    coefs = result.summary("coefficients")
    assert "m_city~t" in set(coefs.term) and "m_firm" in set(coefs.term)

    result.write(tmp_path)
    for name in ("effects.csv", "coefficients.csv", "diagnostics.json", "posterior.nc",
                 "manifest.json", "sensitivity.csv", "classical.csv", "group_mediation.csv",
                 "sensitivity.png"):
        assert (tmp_path / name).is_file(), name
    assert list(pd.read_csv(tmp_path / "effects.csv").effect) == rows
    assert not list(tmp_path.glob(".*tmp"))


@FEW_DRAWS
def test_without_group_there_is_no_group_table(stand_in_sampler, panel, spec):
    from vagg_bayes.pipeline import estimate

    plain = spec.with_(group=None, time=None, varying_slope=False)
    result = estimate(panel, plain, settings=SamplerSettings(draws=60))
    assert set(result.tables) == {"sensitivity", "classical"}
    assert result.meta["mediators"]["m_city"]["level"] == "row"
    assert result.fits["outcome"].group_effects is None


# ------------------------------------------------------------------- recovery (slow)
def _fit_demo(seed, family="gaussian", draws=1000, **sizes):
    import warnings
    from pathlib import Path

    from vagg_bayes.data.simulate import simulate_panel
    from vagg_bayes.pipeline import estimate
    from vagg_bayes.spec import load_spec

    panel, truth = simulate_panel(seed=seed, **sizes)
    spec = load_spec(Path(__file__).parents[2] / "models" / "mediation.toml")
    if family == "bernoulli":
        spec = spec.with_(outcome="survival", family="bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = estimate(panel, spec, settings=SamplerSettings(draws=draws, tune=draws,
                                                                random_seed=seed))
    return result, truth


@pytest.mark.slow
def test_recovers_every_path_of_the_demo_panel():
    """The demo's panel (quick size): every effect's 94% HDI covers the truth.

    Nine 94% intervals all cover the truth in about 60% of data sets; seed 20241 (the
    demo's) is one of them (seeds 1, 2 and 3 each miss one path by a small margin).
    """
    from vagg_bayes.cli import true_effect

    result, truth = _fit_demo(seed=20241, n_firms=5000)
    assert result.diagnostics.max_r_hat <= 1.01, result.diagnostics.problems
    effects = result.summary("effects")
    assert len(effects) == 9
    for row in effects.itertuples():
        true = true_effect(truth, "resilience", row.effect)
        assert row.hdi_low <= true <= row.hdi_high, (row.effect, true, row.hdi_low, row.hdi_high)
        assert row.r_hat <= 1.01


@pytest.mark.slow
def test_no_effect_data_give_intervals_around_zero():
    result, _ = _fit_demo(seed=5, draws=500, n_firms=3000, effect_scale=0.0)
    effects = result.summary("effects").set_index("effect")
    for name in ("total", "direct", "indirect"):
        assert effects.loc[name, "hdi_low"] <= 0 <= effects.loc[name, "hdi_high"], name


@pytest.mark.slow
def test_bernoulli_gformula_recovers_survival_effects():
    """Logit outcome, six mediators, a small panel: the probability-scale truth is covered."""
    from vagg_bayes.cli import true_effect

    result, truth = _fit_demo(seed=7, family="bernoulli", n_firms=1000, n_years=5,
                              n_cities=40)
    effects = result.summary("effects")
    # the effects mix well; the SD of 40 city intercepts of a logit model may mix slowly
    assert result.diagnostics.divergences == 0
    assert effects.r_hat.max() <= 1.01 and effects.ess_bulk.min() >= 400
    checked = 0
    for row in effects.itertuples():
        true = true_effect(truth, "survival", row.effect)
        if true is None:  # per-path control/treated parts: not in the simulator's truth
            continue
        checked += 1
        assert row.hdi_low <= true <= row.hdi_high, (row.effect, true, row.hdi_low, row.hdi_high)
    assert checked == 13


@pytest.mark.slow
def test_varying_mediator_path_recovers_the_average_of_group_products():
    """a_j and b_j vary by city and covary: the indirect effect is the mean of a_j b_j
    (mean(a) mean(b) + cov), which the joint model of the two equations recovers, not the
    product of the means."""
    from vagg_bayes.pipeline import estimate
    from vagg_bayes.spec import Spec

    rng = np.random.default_rng(11)
    J, per = 40, 400
    city = np.repeat(np.arange(J), per)
    z1, z2 = rng.normal(size=J), rng.normal(size=J)
    a = 0.5 + 0.3 * z1
    b = 0.4 + 0.3 * (0.9 * z1 + np.sqrt(1 - 0.81) * z2)
    t = rng.normal(size=city.size)
    m = a[city] * t + 0.5 * rng.normal(size=J)[city] + rng.normal(size=city.size)
    y = 0.3 * t + b[city] * m + 0.5 * rng.normal(size=J)[city] + rng.normal(size=city.size)
    frame = pd.DataFrame({"place": city, "dose": t, "channel": m, "result": y})
    truth = float(np.mean(a[city] * b[city]))
    naive = float(np.mean(a[city]) * np.mean(b[city]))
    assert truth - naive > 0.05  # the covariance term is material in these data
    spec = Spec(outcome="result", treatment="dose", mediators=("channel",), group="place",
                varying_slope=True, varying_mediator="channel")
    result = estimate(frame, spec, settings=SamplerSettings(random_seed=11))
    assert result.diagnostics.max_r_hat <= 1.01, result.diagnostics.problems
    eff = result.summary("effects").set_index("effect")
    row = eff.loc["indirect:channel"]
    assert row.hdi_low <= truth <= row.hdi_high, (row.to_dict(), truth)
    assert abs(row["mean"] - truth) < abs(row["mean"] - naive)
    assert eff.loc["direct", "hdi_low"] <= 0.3 <= eff.loc["direct", "hdi_high"]
    coefs = result.summary("coefficients").set_index("term")
    assert {"sd(place:channel)", "channel~sd(place:dose)"} <= set(coefs.index)  # b_j, a_j
    assert "sd(place:dose)" not in coefs.index  # the direct effect is a common slope
    # fitted jointly: the correlation of the two paths across cities is estimated
    # (simulated: 0.9)
    corr = coefs.loc["corr_paths(place:channel)"]
    assert corr.hdi_low <= 0.9 <= corr.hdi_high and corr["mean"] > 0.5
    # the joint prior is split between the two fits (for power-scaling sensitivity)
    priors = [np.asarray(f.idata.log_prior["prior"]) for f in result.fits.values()]
    assert all(p.shape == result.effect_draws["total"].shape for p in priors)
    assert np.all(np.isfinite(priors[0] + priors[1])) and np.ptp(priors[1]) > 0
    note = result.meta["mediators"]["channel"]
    assert "jointly" in note["varying_path"] and 0.5 < note["path_corr"]["mean"] < 1
    priors = result.summary("priors").set_index(["equation", "parameter"])["prior"]
    assert "4 x 4" in priors[("result", "corr(place)")]
    assert "4 x 4" in priors[("channel", "corr(place)")]
