"""The Bernoulli model: whitening and the NumPy likelihood leave the posterior unchanged."""

import numpy as np
import pytest

from vagg_bayes.bayes.design import build_design
from vagg_bayes.bayes.glm import build_logit_model, group_cholesky, softplus
from vagg_bayes.bayes.numeric import softplus_sigmoid
from vagg_bayes.bayes.priors import default_priors


def _mixed_frame(frame_factory):
    """Binary data with some groups of 4 rows (non-centred) beside large ones (centred)."""
    frame = frame_factory(n=3000, J=12, seed=8, binary=True)
    small = frame["school"].isin([2, 7, 9])
    keep = ~small | (frame.groupby("school").cumcount() < 4)
    return frame[keep].reset_index(drop=True)


def _reference_model(design, priors):
    """The textbook non-centred model: u_j = L z_j, z_j ~ N(0, I)."""
    import pymc as pm
    import pytensor.tensor as pt

    from vagg_bayes.bayes.collapsed import _chol_factor_pt

    q = len(design.varying)
    with pm.Model() as ref:
        theta = pm.Normal("theta", priors.theta_mu, priors.theta_sd, shape=design.p)
        tau = pm.HalfNormal("tau", priors.tau_scale, shape=q)
        corr = 2 * pm.Beta("corr_raw", priors.lkj_eta, priors.lkj_eta) - 1 if q == 2 else None
        L = _chol_factor_pt(tau, corr)
        z = pm.Normal("z", 0, 1, shape=(design.n_groups, q))
        u = pt.dot(z, L.T)
        W = design.Z[:, list(design.varying)]
        eta = pt.dot(design.Z, theta) + pt.sum(u[design.group_codes] * W, axis=1)
        pm.Bernoulli("y", logit_p=eta, observed=design.y)
    return ref


def _unpack(w, model, design):
    """The reference model's values at the whitened vector ``w``, and ``log |d z / d F|``."""
    import pytensor

    q = len(design.varying)
    outs = [model["theta"], model["tau"], model["u"]] + ([model["corr"]] if q == 2 else [])
    value = model.rvs_to_values[model["w"]]
    out = pytensor.function([value], model.replace_rvs_by_values(outs))(w)
    theta, tau, u = out[:3]
    point = {"theta": theta, "tau_log__": np.log(tau)}
    L = np.diag(tau)
    if q == 2:
        corr = out[3]
        point["corr_raw_logodds__"] = np.log1p(corr) - np.log1p(-corr)
        L = np.array([[tau[0], 0], [tau[1] * corr, tau[1] * np.sqrt(1 - corr**2)]])
    point["z"] = np.linalg.solve(L, u.T).T
    # Coordinate F_ja = lam mean + L_aa^lam z_ja: its density carries L_aa^-lam, with L the
    # group's Cholesky factor of the covariance of (b_j0 + xbar_j b_j1, b_j1).
    Lj = group_cholesky(tau, out[3] if q == 2 else 0.0, model.slope_means)
    log_jac = -(model.centring * np.log(np.diagonal(Lj, axis1=1, axis2=2))).sum()
    return point, log_jac


@pytest.mark.parametrize("varying_slope", [False, True])
@pytest.mark.parametrize("parameterization", ["auto", "centred", "noncentred"])
def test_whitened_logit_model_has_the_reference_posterior(spec_slope, frame_factory,
                                                          varying_slope, parameterization):
    frame = _mixed_frame(frame_factory)
    spec = spec_slope.with_(varying_slope=varying_slope, controls=("kind", "climate"))
    design = build_design(frame, spec)
    priors = default_priors(design, "bernoulli")
    model = build_logit_model(design, priors, parameterization=parameterization)
    assert model.group_level == ["climate"]  # in the intercepts' mean, not the rows
    if parameterization == "auto":
        assert model.centred.any() and not model.centred.all()
        assert np.all((model.centring > 0) & (model.centring < 1))  # partial centring
    ref = _reference_model(design, priors)
    f, f_ref = model.compile_logp(), ref.compile_logp()
    rng = np.random.default_rng(5)
    k = model.initial_point()["w"].size
    diffs = []
    for _ in range(4):
        w = rng.normal(size=k) * 0.5
        point, log_jac = _unpack(w, model, design)
        diffs.append(f({"w": w}) - (f_ref(point) + log_jac))
    # The whitening is affine and the centring a shift: up to the Jacobian of the
    # centred coordinates (added above) the densities differ by one constant.
    np.testing.assert_allclose(diffs, diffs[0], rtol=0, atol=1e-7)


@pytest.mark.parametrize("varying_slope", [False, True])
def test_group_time_cells_have_the_reference_posterior(spec_slope, frame_factory,
                                                       varying_slope):
    """Group-time effects e_jt ~ N(0, sd_cell^2) (partially centred, whitened): the
    density equals the textbook model's up to the Jacobians of the centred coordinates."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    from vagg_bayes.bayes.collapsed import _chol_factor_pt

    frame = _mixed_frame(frame_factory)
    spec = spec_slope.with_(varying_slope=varying_slope, controls=("kind", "climate"))
    design = build_design(frame, spec, group_time=True)
    priors = default_priors(design, "bernoulli")
    model = build_logit_model(design, priors)
    cells = model.cells
    assert cells.n == len(set(zip(design.group_codes, design.time_codes, strict=True)))
    assert 0 < cells.lam.min() and cells.lam.max() < 1
    ref = _reference_model(design, priors)
    codes = cells.codes
    with ref:
        sd_cell = pm.HalfNormal("sd_cell", priors.tau_scale)
        z_cell = pm.Normal("z_cell", 0, 1, shape=cells.n)
        # the likelihood with the cells, in place of the reference's own "y" (left out of
        # the density compiled below)
        W = design.Z[:, list(design.varying)]
        q = len(design.varying)
        L = _chol_factor_pt(ref["tau"], (2 * ref["corr_raw"] - 1) if q == 2 else None)
        u = pt.dot(ref["z"], L.T)
        eta = (pt.dot(design.Z, ref["theta"]) + pt.sum(u[design.group_codes] * W, axis=1)
               + sd_cell * z_cell[codes])
        pm.Potential("with_cells", pt.sum(design.y * eta - pt.softplus(eta)))
    f, f_ref = model.compile_logp(), ref.compile_logp(vars=[
        *[v for v in ref.basic_RVs if v.name != "y"], ref["with_cells"]])
    value = model.rvs_to_values[model["w"]]
    cell_out = pytensor.function([value], model.replace_rvs_by_values(
        [model["sd_cell"], model["cell_effect"]]))
    rng = np.random.default_rng(9)
    k = model.initial_point()["w"].size
    diffs = []
    for _ in range(4):
        w = rng.normal(size=k) * 0.5
        point, log_jac = _unpack(w, model, design)
        sd_c, e = cell_out(w)
        point["sd_cell_log__"] = np.log(sd_c)
        point["z_cell"] = e / sd_c
        log_jac -= float((cells.lam * np.log(sd_c)).sum())
        diffs.append(f({"w": w}) - (f_ref(point) + log_jac))
    np.testing.assert_allclose(diffs, diffs[0], rtol=0, atol=1e-7)


def test_auto_parameterisation_follows_the_information():
    """Large groups: centred; a slope with no variation within groups: non-centred."""
    from vagg_bayes.bayes.glm import centred_mask, centring_weights

    rng = np.random.default_rng(0)
    J = 6
    g = np.repeat(np.arange(J), [400, 400, 400, 3, 3, 400])
    x = rng.normal(size=J)[g]  # constant within groups
    x[g == 5] += rng.normal(size=400)  # ... except in group 5
    import pandas as pd

    from vagg_bayes.spec import Spec

    frame = pd.DataFrame({"y": rng.integers(0, 2, g.size), "x": x, "g": g})
    design = build_design(frame, Spec(outcome="y", treatment="x", group="g",
                                      varying_slope=True, family="bernoulli"))
    mask = centred_mask(design)
    np.testing.assert_array_equal(mask[:, 0], [True, True, True, False, False, True])
    np.testing.assert_array_equal(mask[:, 1], [False] * 5 + [True])
    assert not centred_mask(design, group_sd=np.array([0.5, 0.01]))[:, 1].any()
    assert centred_mask(design, "centred").all()
    assert not centred_mask(design, "noncentred").any()
    lam = centring_weights(design)  # partial centring: the weight of the group's own data
    assert np.all((lam >= 0) & (lam < 1)) and np.all(lam[:, 0] > 0)
    assert lam[:5, 1].max() < 1e-10  # no variation within the group: non-centred
    np.testing.assert_array_equal(lam > 0.5, mask)
    assert centring_weights(design, "centred").min() == 1.0
    assert centring_weights(design, "noncentred").max() == 0.0


@pytest.mark.parametrize("cells", [False, True], ids=["groups", "group-time cells"])
@pytest.mark.parametrize("varying_slope", [False, True])
def test_numpy_likelihood_equals_the_graph(spec_slope, frame_factory, varying_slope, cells):
    frame = _mixed_frame(frame_factory)
    design = build_design(frame, spec_slope.with_(varying_slope=varying_slope,
                                                  controls=("kind", "climate")),
                          group_time=cells)
    priors = default_priors(design, "bernoulli")
    fast = build_logit_model(design, priors, numpy_likelihood=True)
    graph = build_logit_model(design, priors, numpy_likelihood=False)
    rng = np.random.default_rng(6)
    k = fast.initial_point()["w"].size
    for _ in range(3):
        point = {"w": rng.normal(size=k)}
        np.testing.assert_allclose(fast.compile_logp()(point), graph.compile_logp()(point),
                                   rtol=1e-12)
        np.testing.assert_allclose(fast.compile_dlogp()(point), graph.compile_dlogp()(point),
                                   rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("cells", [False, True], ids=["groups", "group-time cells"])
@pytest.mark.parametrize("controls", [("kind", "climate"), ()], ids=["controls", "none"])
@pytest.mark.parametrize("varying_slope", [False, True])
def test_compiled_twin_equals_the_graph_and_follows_new_data(spec_slope, frame_factory,
                                                             varying_slope, controls, cells):
    """The numba twin (what PyMC's NUTS evaluates) has the graph's value and gradient,
    also far out (tiny and huge group SDs, correlation near 1) and after new data."""
    frame = _mixed_frame(frame_factory)
    spec = spec_slope.with_(varying_slope=varying_slope, controls=controls)
    design = build_design(frame, spec, group_time=cells)
    model = build_logit_model(design, default_priors(design, "bernoulli"))
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    twin = model.fast_logp_dlogp
    rng = np.random.default_rng(11)
    k = model.initial_point()["w"].size
    points = [rng.normal(size=k) for _ in range(4)] + [3 * rng.normal(size=k)]
    for w in points:
        lp, grad = twin(w)
        assert lp == pytest.approx(float(logp({"w": w})), rel=1e-11, abs=1e-8)
        np.testing.assert_allclose(grad, dlogp({"w": w}), rtol=1e-8,
                                   atol=1e-9 * np.abs(grad).max())
    shuffled = frame.assign(dose=rng.permutation(frame["dose"].to_numpy()))
    model.update_data(build_design(shuffled, spec, group_time=cells))
    w = points[0]
    lp2, grad2 = twin(w)
    assert lp2 != pytest.approx(lp)
    assert lp2 == pytest.approx(float(logp({"w": w})), rel=1e-11, abs=1e-8)
    np.testing.assert_allclose(grad2, dlogp({"w": w}), rtol=1e-8,
                               atol=1e-9 * np.abs(grad2).max())


def test_softplus_and_sigmoid_are_stable():
    from scipy.special import expit

    x = np.concatenate([np.linspace(-800, 800, 20001), [0.0, 1e-12, -1e-12, 36.0, -36.0]])
    sp, sig = softplus_sigmoid(x)
    np.testing.assert_allclose(sp, np.logaddexp(0, x), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(sig, expit(x), rtol=0, atol=1e-14)
    np.testing.assert_allclose(softplus(x), np.logaddexp(0, x), rtol=1e-14, atol=1e-15)
    assert np.all(np.isfinite(sp)) and np.all(np.isfinite(sig))


def test_numeric_helpers_are_stable_and_written_once():
    """Inverse logit and log-sigmoid against SciPy; glm re-exports the one softplus."""
    from scipy.special import expit as scipy_expit
    from scipy.special import log_expit as scipy_log_expit

    from vagg_bayes.bayes import glm, numeric

    x = np.concatenate([np.linspace(-800, 800, 20001), [0.0, 1e-12, -1e-12, 36.0, -36.0]])
    np.testing.assert_allclose(numeric.expit(x), scipy_expit(x), rtol=1e-15, atol=0)
    np.testing.assert_allclose(numeric.log_expit(x), scipy_log_expit(x), rtol=1e-14, atol=1e-15)
    assert numeric.expit(np.array([-np.inf, np.inf])).tolist() == [0.0, 1.0]
    assert float(numeric.expit(0.0)) == 0.5 and float(numeric.softplus(0.0)) == np.log(2.0)
    assert numeric.LOG_2PI == pytest.approx(np.log(2 * np.pi), rel=1e-16)
    assert glm.softplus is numeric.softplus


def test_failed_pooled_fit_falls_back_loudly():
    """Non-finite Newton steps: the prior mean, with a FallbackWarning naming a remedy."""
    from types import SimpleNamespace

    from vagg_bayes.bayes.diagnostics import FallbackWarning
    from vagg_bayes.bayes.glm import _newton_pooled

    rng = np.random.default_rng(0)
    extreme = SimpleNamespace(Z=np.column_stack([np.ones(50), 1e200 * rng.normal(size=50)]),
                              y=(rng.random(50) < 0.5).astype(float))
    priors = SimpleNamespace(theta_mu=np.array([0.1, 0.0]), theta_sd=np.array([2.5, 2.0]))
    with pytest.warns(FallbackWarning, match="prior mean.*Remedy"):
        theta, hessian = _newton_pooled(extreme, priors)
    np.testing.assert_array_equal(theta, priors.theta_mu)
    np.testing.assert_array_equal(hessian, np.diag([1 / 2.5**2, 1 / 2.0**2]))
    # ordinary data: the pooled mode, silently (the suite turns warnings into errors)
    sane = SimpleNamespace(Z=extreme.Z * np.array([1.0, 1e-200]), y=extreme.y)
    theta, _ = _newton_pooled(sane, priors)
    assert np.all(np.isfinite(theta)) and not np.array_equal(theta, priors.theta_mu)
