"""Fitting one equation: data-scale transforms, and the collapsed posterior equals the plain one."""

import numpy as np
import pytest

from vagg_bayes.bayes.design import build_design
from vagg_bayes.bayes.fit import _to_data_scale, fit_equation
from vagg_bayes.bayes.priors import default_priors
from vagg_bayes.bayes.sample import SamplerSettings


def test_data_scale_transform_is_exact(frame, spec_slope):
    design = build_design(frame, spec_slope)
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(1, 3, design.p))
    u_std = rng.normal(size=(1, 3, design.n_groups, 2))
    tau = np.abs(rng.normal(size=(1, 3, 2)))
    corr = np.full((1, 3), 0.3)
    beta, sd, corr_data, u = _to_data_scale(design, theta, tau, corr, u_std)
    np.testing.assert_allclose(design.X @ beta[0, 1], design.Z @ theta[0, 1])
    W, Wz = design.X[:, [0, design.treatment_index]], design.Z[:, [0, design.treatment_index]]
    g = design.group_codes
    np.testing.assert_allclose(
        np.sum(W * u[0, 1][g], axis=1), np.sum(Wz * u_std[0, 1][g], axis=1)
    )
    assert sd.shape == (1, 3, 2) and np.all(np.abs(corr_data) <= 1)


def _plain_model(design, priors):
    """The textbook model with the group effects sampled (non-centred)."""
    import pymc as pm
    import pytensor.tensor as pt

    from vagg_bayes.bayes.collapsed import _chol_factor_pt

    with pm.Model() as model:
        theta = pm.Normal("theta", priors.theta_mu, priors.theta_sd, shape=design.p)
        sigma = pm.Exponential("sigma", priors.sigma_rate)
        tau = pm.HalfNormal("tau", priors.tau_scale, shape=2)
        corr_raw = pm.Beta("corr_raw", priors.lkj_eta, priors.lkj_eta)
        corr = pm.Deterministic("corr", 2 * corr_raw - 1)
        L = _chol_factor_pt(tau, corr)
        z = pm.Normal("z", 0, 1, shape=(design.n_groups, 2))
        u = pm.Deterministic("u", pt.dot(z, L.T))
        W = design.Z[:, list(design.varying)]
        mu = pt.dot(design.Z, theta) + pt.sum(u[design.group_codes] * W, axis=1)
        pm.Normal("y", mu, sigma, observed=design.y)
    return model


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the plain model's warm-up overflows
def test_collapsed_posterior_equals_plain_posterior(frame, spec_slope):
    import arviz as az
    import pymc as pm

    design = build_design(frame, spec_slope)
    settings = SamplerSettings(draws=1500, tune=1000, chains=2, random_seed=11)
    fit = fit_equation(design, "gaussian", settings)
    assert fit.diagnostics.passed, fit.diagnostics.problems

    priors = default_priors(design, "gaussian")
    with _plain_model(design, priors):
        plain = pm.sample(draws=1500, tune=1000, chains=2, random_seed=12, progressbar=False,
                          target_accept=0.95, compute_convergence_checks=False)
    th = np.asarray(plain.posterior["theta"])
    sig, tau = np.asarray(plain.posterior["sigma"]), np.asarray(plain.posterior["tau"])
    cor = np.asarray(plain.posterior["corr"])
    beta_p, sd_p, corr_p, u_p = _to_data_scale(design, th, tau, cor,
                                               np.asarray(plain.posterior["u"]))

    def agree(a, b, name):
        a, b = np.asarray(a), np.asarray(b)
        se = np.sqrt(a.var() / az.ess(a) + b.var() / az.ess(b))
        assert abs(a.mean() - b.mean()) < 4.5 * se, (name, a.mean(), b.mean(), se)

    for k, term in enumerate(design.terms):
        agree(fit.beta[..., k], beta_p[..., k], term)
    agree(fit.sigma, sig, "sigma")
    agree(fit.group_sd[..., 0], sd_p[..., 0], "sd intercept")
    agree(fit.group_sd[..., 1], sd_p[..., 1], "sd slope")
    agree(fit.group_corr, corr_p, "corr")
    for j in (0, 3, 7):
        agree(fit.group_effects[..., j, 1], u_p[..., j, 1], f"slope of group {j}")
        agree(fit.group_effects[..., j, 0], u_p[..., j, 0], f"intercept of group {j}")


@pytest.mark.slow
def test_bernoulli_fit_recovers_slope_and_converges(spec_slope, frame_factory):
    frame = frame_factory(n=1500, J=10, seed=5, binary=True, slope_sd=0.0)
    spec = spec_slope.with_(varying_slope=False)
    design = build_design(frame, spec)
    fit = fit_equation(design, "bernoulli", SamplerSettings(draws=1000, tune=1000))
    assert fit.diagnostics.passed, fit.diagnostics.problems
    k = design.treatment_index
    low, high = np.quantile(fit.beta[..., k], [0.03, 0.97])
    assert low < 0.8 < high
    assert fit.idata.log_likelihood["y"].shape[-1] == 10
