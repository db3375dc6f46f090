"""The joint mediator-outcome model: its collapsed density is the exact marginal one."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.design import build_design
from vagg_bayes.bayes.joint import build_joint_model, draw_group_effects
from vagg_bayes.bayes.priors import default_priors
from vagg_bayes.spec import Spec


def _pair(seed=0, J=5, per=7):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(J), per)
    t = rng.normal(size=g.size)
    m = (0.5 + 0.3 * rng.normal(size=J))[g] * t + rng.normal(size=g.size)
    y = 0.2 * t + (0.4 + 0.3 * rng.normal(size=J))[g] * m + rng.normal(size=g.size)
    frame = pd.DataFrame({"grp": g, "t": t, "m": m, "y": y, "c": rng.normal(size=g.size)})
    spec = Spec(outcome="y", treatment="t", mediators=("m",), controls=("c",), group="grp",
                varying_slope=True, varying_mediator="m")
    dm = build_design(frame, spec, response="m", regressors=["t", "c"])
    dy = build_design(frame, spec, regressors=["t", "m", "c"], varying_column="m")
    return dm, dy


def _dense(dm, dy, theta_m, theta_y, s_m, s_y, L):
    """Per group: the marginal log-density of (M_j, Y_j) and the conditional mean of g_j."""
    S = L @ L.T
    ll, means = [], []
    for j in range(dm.n_groups):
        im, iy = dm.group_codes == j, dy.group_codes == j
        Wm = dm.Z[im][:, list(dm.varying)]
        Wy = dy.Z[iy][:, list(dy.varying)]
        W = np.zeros((Wm.shape[0] + Wy.shape[0], 4))
        W[: Wm.shape[0], :2], W[Wm.shape[0]:, 2:] = Wm, Wy
        r = np.concatenate([dm.y[im] - dm.Z[im] @ theta_m, dy.y[iy] - dy.Z[iy] @ theta_y])
        D = np.diag(np.r_[np.full(Wm.shape[0], s_m**2), np.full(Wy.shape[0], s_y**2)])
        V = W @ S @ W.T + D
        sign, logdet = np.linalg.slogdet(V)
        ll.append(-0.5 * (len(r) * np.log(2 * np.pi) + logdet + r @ np.linalg.solve(V, r)))
        means.append(S @ W.T @ np.linalg.solve(V, r))
    return np.array(ll), np.array(means)


def test_collapsed_joint_density_is_the_marginal_one():
    import pytensor

    dm, dy = _pair()
    model = build_joint_model(dm, dy, default_priors(dm, "gaussian"),
                              default_priors(dy, "gaussian"))
    rng = np.random.default_rng(3)
    theta_m, theta_y = rng.normal(size=dm.p), rng.normal(size=dy.p)
    s_m, s_y = 0.8, 1.3
    L = np.tril(rng.normal(size=(4, 4)) * 0.4)
    L[np.diag_indices(4)] = np.abs(L[np.diag_indices(4)]) + 0.3
    # the model's Potential evaluated at these values (chol given as the free packed vector
    # would need its transform; evaluate the potential's graph directly instead)
    pot = model["loglik"]
    chol = model["chol"]
    fn = pytensor.function(
        [model["theta_m"], model["theta_y"], model["sigma_m"], model["sigma_y"], chol],
        pot, on_unused_input="ignore")
    packed = L[np.tril_indices(4)]
    got = fn(theta_m, theta_y, s_m, s_y, packed)
    ll, means = _dense(dm, dy, theta_m, theta_y, s_m, s_y, L)
    np.testing.assert_allclose(got, ll.sum(), rtol=1e-10)
    # the per-group log-likelihood and the conditional means of the exact draws
    draws, ll_j = draw_group_effects(model.joint_stats, theta_m[None], theta_y[None],
                                     np.array([s_m]), np.array([s_y]), L[None],
                                     rng=np.random.default_rng(0))
    np.testing.assert_allclose(ll_j[0], ll, rtol=1e-10)
    many = [draw_group_effects(model.joint_stats, theta_m[None], theta_y[None],
                               np.array([s_m]), np.array([s_y]), L[None],
                               rng=np.random.default_rng(k))[0][0] for k in range(400)]
    np.testing.assert_allclose(np.mean(many, axis=0), means, atol=0.15)


def test_pair_needs_the_same_groups_and_a_varying_slope_each():
    dm, dy = _pair()
    pri = default_priors(dm, "gaussian"), default_priors(dy, "gaussian")
    fewer = build_design(pd.DataFrame({"grp": [0, 0, 1, 1], "t": [0.1, 0.5, 0.2, 0.9],
                                       "c": [1.0, 2.0, 0.0, 1.0], "m": [1.0, 2.0, 3.0, 1.0]}),
                         Spec(outcome="m", treatment="t", group="grp", varying_slope=True),
                         regressors=["t", "c"])
    with pytest.raises(ValueError, match="same groups"):
        build_joint_model(fewer, dy, pri[0], pri[1])


def test_analysis_refits_the_pair_without_rebuilding_and_reproduces_the_fit(monkeypatch):
    """Refits of a jointly fitted pair reuse its compiled model (new shared values, warm
    NUTS start); a refit on the first data with the first seed gives the fit's draws."""
    import warnings

    from vagg_bayes import Analysis
    from vagg_bayes.bayes import joint
    from vagg_bayes.bayes.diagnostics import ConvergenceWarning
    from vagg_bayes.bayes.sample import SamplerSettings

    rng = np.random.default_rng(7)
    J, per = 12, 15
    g = np.repeat(np.arange(J), per)
    t = rng.normal(size=g.size)
    m = (0.5 + 0.3 * rng.normal(size=J))[g] * t + rng.normal(size=g.size)
    y = 0.2 * t + (0.4 + 0.3 * rng.normal(size=J))[g] * m + rng.normal(size=g.size)
    frame = pd.DataFrame({"stadt": g, "t": t, "m": m, "y": y})
    spec = Spec(outcome="y", treatment="t", mediators=("m",), group="stadt",
                varying_slope=True, varying_mediator="m")
    analysis = Analysis(spec, SamplerSettings(draws=200, tune=200, random_seed=5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = analysis.fit(frame, tables=False)
        builds = []
        original = joint.build_joint_model
        monkeypatch.setattr(joint, "build_joint_model",
                            lambda *a, **k: builds.append(1) or original(*a, **k))
        permuted = frame.assign(t=rng.permutation(frame["t"].to_numpy()))
        placebo = analysis.refit(permuted, seed=analysis.replicate_seeds(1)[0])
        again = analysis.refit(frame)
        assert builds == []
        assert not np.array_equal(placebo.effect_draws["indirect"],
                                  first.effect_draws["indirect"])
        np.testing.assert_array_equal(again.effect_draws["indirect"],
                                      first.effect_draws["indirect"])
        np.testing.assert_array_equal(again.effect_draws["total"], first.effect_draws["total"])
        analysis.refit(frame[frame["stadt"] < 9])  # fewer groups: a new model
    assert builds == [1]
