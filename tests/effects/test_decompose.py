"""Effect identities on fake posteriors: exact algebra, no sampling."""

import numpy as np
import pytest
from scipy.special import expit

from vagg_bayes.effects.decompose import decompose, group_slopes, treatment_shifts
from vagg_bayes.effects.total import total_effect


def test_gaussian_effects_add_up_exactly(fake_fits):
    outcome, meds = fake_fits("gaussian")
    dec = decompose(outcome, meds)
    d = dec.draws
    assert list(d) == ["total", "direct", "indirect", "indirect:m_firm", "indirect:m_city"]
    np.testing.assert_allclose(d["total"], d["direct"] + d["indirect"], rtol=0, atol=1e-14)
    np.testing.assert_allclose(d["indirect"], d["indirect:m_firm"] + d["indirect:m_city"],
                               rtol=0, atol=1e-14)
    # the direct effect is the outcome equation's sample-average treatment slope
    np.testing.assert_allclose(d["direct"], total_effect(outcome), rtol=1e-12)


def test_gaussian_indirect_by_hand(fake_fits):
    """indirect:m = b_m * mean over rows of (a_m + u_m[group of row])."""
    outcome, meds = fake_fits("gaussian")
    dec = decompose(outcome, meds)
    codes = outcome.design.group_codes
    for name, fit in meds.items():
        b = outcome.beta[..., outcome.design.terms.index(name)]
        k = fit.design.treatment_index
        # map the outcome rows' cities to the mediator design's groups by label
        pos = {g: j for j, g in enumerate(fit.design.group_labels)}
        rows = np.array([pos[g] for g in outcome.design.group_labels[codes]])
        slope = fit.beta[..., k][..., None] + fit.group_effects[..., rows, 1]
        np.testing.assert_allclose(dec.draws[f"indirect:{name}"], b * slope.mean(axis=-1),
                                   rtol=1e-12)
    # within a group: direct_j = c + u_j and indirect_j = sum_m b_m a_mj
    j = 3
    k = outcome.design.treatment_index
    np.testing.assert_allclose(dec.group_draws["direct"][..., j],
                               outcome.beta[..., k] + outcome.group_effects[..., j, 1])
    expected = sum(outcome.beta[..., outcome.design.terms.index(m)]
                   * group_slopes(f, outcome.design.group_labels)[..., j] for m, f in meds.items())
    np.testing.assert_allclose(dec.group_draws["indirect"][..., j], expected)


def test_group_slopes_maps_labels_and_unknown_groups(panel, fit_factory):
    from vagg_bayes.bayes.design import build_design
    from vagg_bayes.spec import Spec

    spec = Spec(outcome="y", treatment="t", group="city", varying_slope=True)
    fit = fit_factory(build_design(panel[panel.city != 2], spec))
    labels = np.array([5, 2, 0])
    out = group_slopes(fit, labels)
    k = fit.design.treatment_index
    where = list(fit.design.group_labels).index(5)
    np.testing.assert_allclose(out[..., 0], fit.beta[..., k] + fit.group_effects[..., where, 1])
    np.testing.assert_allclose(out[..., 1], fit.beta[..., k])  # city 2 unseen: population slope


@pytest.mark.parametrize("binary", [False, True])
def test_bernoulli_gformula_identities(fake_fits, binary, fake_panel_factory):
    panel = fake_panel_factory(binary_treatment=binary)
    outcome, meds = fake_fits("bernoulli", panel=panel)
    d = decompose(outcome, meds).draws
    assert list(d)[:5] == ["total", "direct", "indirect", "indirect:m_firm", "indirect:m_city"]
    assert "indirect:m_city:treated" in d and "direct:control" in d
    np.testing.assert_allclose(d["total"], d["direct"] + d["indirect"], rtol=0, atol=1e-13)
    np.testing.assert_allclose(d["total"], d["direct:control"] + d["indirect:treated"],
                               rtol=0, atol=1e-13)
    np.testing.assert_allclose(d["total"], d["direct:treated"] + d["indirect:control"],
                               rtol=0, atol=1e-13)
    np.testing.assert_allclose(d["direct"], (d["direct:control"] + d["direct:treated"]) / 2)


@pytest.mark.parametrize("varying_mediator", [None, "m_firm"])
@pytest.mark.parametrize("binary", [False, True])
def test_bernoulli_gformula_by_brute_force(fake_fits, spec, binary, varying_mediator,
                                           fake_panel_factory):
    """Rebuild the design with the potential treatment and mediators for one draw (with a
    varying mediator path the shifted mediator also moves the group's own slope term)."""
    outcome, meds = fake_fits("bernoulli", panel=fake_panel_factory(binary_treatment=binary),
                              spec=spec.with_(varying_mediator=varying_mediator))
    dec = decompose(outcome, meds)
    design = outcome.design
    if varying_mediator:
        assert design.varying == (0, design.terms.index(varying_mediator))
    kt = design.treatment_index
    d0, d1 = treatment_shifts(design.X[:, kt])
    a = {m: group_slopes(f, design.group_labels)[..., design.group_codes].reshape(-1, design.n)
         for m, f in meds.items()}
    draw = 5

    def p(t_shift, med_shift):
        X = design.X.copy()
        X[:, kt] += t_shift
        for m, shift in med_shift.items():
            X[:, design.terms.index(m)] += a[m][draw] * shift
        return expit(outcome.linear_predictor(slice(draw, draw + 1), X))[0]

    both = lambda s: dict.fromkeys(meds, s)  # noqa: E731
    flat = {k: v.reshape(-1)[draw] for k, v in dec.draws.items()}
    assert flat["total"] == pytest.approx(np.mean(p(d1, both(d1)) - p(d0, both(d0))), abs=1e-12)
    assert flat["direct:control"] == pytest.approx(
        np.mean(p(d1, both(d0)) - p(d0, both(d0))), abs=1e-12)
    assert flat["indirect:treated"] == pytest.approx(
        np.mean(p(d1, both(d1)) - p(d1, both(d0))), abs=1e-12)
    ctl = np.mean(p(d0, {"m_firm": d1, "m_city": d0}) - p(d0, both(d0)))
    assert flat["indirect:m_firm:control"] == pytest.approx(ctl, abs=1e-12)
    trt = np.mean(p(d1, {"m_firm": d1, "m_city": d1}) - p(d1, {"m_firm": d1, "m_city": d0}))
    assert flat["indirect:m_city:treated"] == pytest.approx(trt, abs=1e-12)


def test_bernoulli_without_mediation_reduces_to_total_effect(fake_fits):
    outcome, meds = fake_fits("bernoulli")
    for fit in meds.values():
        fit.beta[..., fit.design.treatment_index] = 0.0
        fit.group_effects[...] = 0.0
    d = decompose(outcome, meds).draws
    np.testing.assert_allclose(d["indirect"], 0.0, atol=1e-15)
    np.testing.assert_allclose(d["total"], total_effect(outcome), rtol=1e-12)


def test_group_gformula_averages_to_sample_effect(fake_fits):
    outcome, meds = fake_fits("bernoulli")
    dec = decompose(outcome, meds)
    w = dec.group_rows / dec.group_rows.sum()
    np.testing.assert_allclose(dec.group_draws["direct"] @ w, dec.draws["direct"], rtol=1e-12)
    np.testing.assert_allclose(dec.group_draws["indirect"] @ w, dec.draws["indirect"],
                               rtol=1e-12)


def test_mismatched_draws_are_refused(fake_fits, fit_factory):
    outcome, meds = fake_fits("gaussian")
    meds["m_firm"] = fit_factory(meds["m_firm"].design, D=3)
    with pytest.raises(ValueError, match="same settings"):
        decompose(outcome, meds)


def test_varying_mediator_path_averages_the_group_products(fake_fits, spec):
    """indirect:m = mean over rows of a_mj b_mj: the covariance of the paths is included."""
    outcome, meds = fake_fits("gaussian", spec=spec.with_(varying_mediator="m_firm"))
    k = outcome.design.terms.index("m_firm")
    assert outcome.design.varying == (0, k)
    dec = decompose(outcome, meds)
    labels, codes = outcome.design.group_labels, outcome.design.group_codes
    b_j = outcome.beta[..., k][..., None] + outcome.group_effects[..., 1]
    np.testing.assert_allclose(group_slopes(outcome, labels, "m_firm"), b_j)
    a_j = group_slopes(meds["m_firm"], labels)
    by_hand = (a_j * b_j)[..., codes].mean(axis=-1)
    np.testing.assert_allclose(dec.draws["indirect:m_firm"], by_hand, rtol=1e-12)
    # not the product of the averages: the draws' group effects covary
    naive = a_j[..., codes].mean(axis=-1) * b_j[..., codes].mean(axis=-1)
    assert np.abs(by_hand - naive).max() > 1e-3
    # the direct effect is then a common slope
    np.testing.assert_allclose(dec.draws["direct"],
                               outcome.beta[..., outcome.design.treatment_index])
    np.testing.assert_allclose(dec.draws["total"], dec.draws["direct"] + dec.draws["indirect"],
                               rtol=0, atol=1e-14)


@pytest.mark.parametrize("binary", [False, True])
def test_treatment_contrast_and_total_effect_by_hand(fake_fits, fake_panel_factory, binary):
    """Treatment levels and the total effect of each family, from the draws directly.

    The levels compared are 0 and 1 for a binary treatment, else the observed value and
    that plus one.
    """
    from vagg_bayes.effects.total import treatment_contrast

    for family in ("gaussian", "bernoulli"):
        outcome, _ = fake_fits(family, panel=fake_panel_factory(binary_treatment=binary))
        design, k = outcome.design, outcome.design.treatment_index
        t = design.X[:, k]
        x0, x1 = treatment_contrast(design.X, k)
        others = np.delete(np.arange(design.X.shape[1]), k)
        np.testing.assert_array_equal(x0[:, others], design.X[:, others])
        np.testing.assert_array_equal(x1[:, others], design.X[:, others])
        expected = (np.zeros_like(t), np.ones_like(t)) if binary else (t, t + 1.0)
        np.testing.assert_array_equal(x0[:, k], expected[0])
        np.testing.assert_array_equal(x1[:, k], expected[1])
        effect = total_effect(outcome)
        if family == "gaussian":  # the slope plus each row's group deviation, averaged
            u = outcome.group_effects[..., design.group_codes, design.varying.index(k)]
            np.testing.assert_allclose(effect, outcome.beta[..., k] + u.mean(axis=-1),
                                       rtol=1e-12)
        else:
            draw = slice(3, 4)
            X0, X1 = design.X.copy(), design.X.copy()
            X0[:, k], X1[:, k] = expected
            p0 = expit(outcome.linear_predictor(draw, X0)[0])
            p1 = expit(outcome.linear_predictor(draw, X1)[0])
            assert effect.reshape(-1)[3] == pytest.approx(np.mean(p1 - p0), abs=1e-14)
