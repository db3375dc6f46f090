"""The nested collapse (unit, group-time and group effects integrated out) is exact."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vagg_bayes.bayes.design import build_design
from vagg_bayes.bayes.nested import (
    NestedDraws,
    _pytensor_arrays,
    _unconstrained_logp,
    group_effects_and_loglik,
    nested_statistics,
    unconstrained_layout,
)
from vagg_bayes.bayes.priors import default_priors
from vagg_bayes.spec import Spec


@pytest.fixture(scope="module")
def unbalanced():
    """Shops (units) in districts (groups) over quarters, seen in 1 to 5 quarters."""
    rng = np.random.default_rng(1)
    rows = []
    for j in range(4):
        for f in range(5):
            quarters = np.sort(rng.choice(5, size=rng.integers(1, 6), replace=False))
            rows += [(j, f"{j}-{f}", q) for q in quarters]
    df = pd.DataFrame(rows, columns=["district", "shop", "quarter"])
    price = rng.normal(size=(4, 5))
    return df.assign(price=price[df.district, df.quarter], staff=rng.normal(size=len(df)),
                     sales=rng.normal(size=len(df)))


def _spec(**kw):
    return Spec(outcome="sales", treatment="price", controls=("staff",), unit="shop",
                group="district", time="quarter", **kw)


def _compiled(design):
    import pytensor
    import pytensor.tensor as pt

    st = nested_statistics(design)
    pri = default_priors(design, "gaussian")
    a = {k: pytensor.shared(np.asarray(v, float)) for k, v in _pytensor_arrays(st).items()}
    pr = {k: pytensor.shared(np.asarray(v, float)) for k, v in {
        "theta_mu": pri.theta_mu, "theta_sd": pri.theta_sd, "sigma_rate": pri.sigma_rate,
        "tau_scale": pri.tau_scale, "lkj_eta": pri.lkj_eta}.items()}
    v = pt.dvector()
    lp, par = _unconstrained_logp(v, a, pr, st, design.p)
    f = pytensor.function([v], [lp, pt.grad(lp, v), *par.values()])
    return st, list(par), f


def _dense_loglik(design, st, par, fixed_sd=None):
    """Sum over groups of the multivariate normal log density with the full covariance."""
    r = design.y - design.Z @ par["theta"]
    total = 0.0
    for j in range(design.n_groups):
        idx = np.flatnonzero(design.group_codes == j)
        V = par["sigma"] ** 2 * np.eye(len(idx))
        if design.unit_codes is not None:
            same_unit = design.unit_codes[idx][:, None] == design.unit_codes[idx][None]
        if "sd_unit" in par:
            V += par["sd_unit"] ** 2 * same_unit
        if fixed_sd is not None:
            V += fixed_sd**2 * same_unit
        if "sd_cell" in par:
            V += par["sd_cell"] ** 2 * (design.time_codes[idx][:, None]
                                        == design.time_codes[idx][None])
        if st.q:
            W = design.Z[idx][:, list(design.varying)]
            R = np.eye(st.q)
            if st.q == 2:
                R[0, 1] = R[1, 0] = par["corr"]
            V += W @ (np.outer(par["tau"], par["tau"]) * R) @ W.T
        total += stats.multivariate_normal(np.zeros(len(idx)), V).logpdf(r[idx])
    return total


def _draws(par):
    pick = {k: np.atleast_1d(np.asarray(par[k], float))[None] if np.ndim(par[k]) else
            np.array([float(par[k])]) for k in par}
    return NestedDraws(pick["theta"], pick["sigma"], pick.get("sd_unit"), pick.get("sd_cell"),
                       pick.get("tau"), pick.get("corr"))


@pytest.mark.parametrize("unit_effects", ["within", "random", "none"])
@pytest.mark.parametrize("varying_slope", [False, True])
def test_collapsed_density_equals_the_dense_marginal(unbalanced, unit_effects, varying_slope):
    design = build_design(unbalanced, _spec(unit_effects=unit_effects,
                                            varying_slope=varying_slope))
    assert design.group_time  # a district-quarter treatment: cell effects by default
    st, names, f = _compiled(design)
    v = np.random.default_rng(7).normal(scale=0.3, size=len(unconstrained_layout(design, st)))
    out = f(v)
    par = dict(zip(names, out[2:]))
    _, _, per_group = group_effects_and_loglik(st, _draws(par), rng=np.random.default_rng(0))
    assert per_group.sum() == pytest.approx(_dense_loglik(design, st, par), abs=1e-9)
    # the sampled density is that log-likelihood plus the priors; its gradient is exact
    h = 1e-6
    eye = np.eye(len(v))
    fd = np.array([(f(v + h * e)[0] - f(v - h * e)[0]) / (2 * h) for e in eye])
    np.testing.assert_allclose(out[1], fd, atol=1e-5)


def test_within_design_adds_unit_means_and_fixed_drops_absorbed_columns(unbalanced):
    size = np.random.default_rng(2).normal(size=unbalanced["shop"].nunique())
    frame = unbalanced.assign(size=size[pd.factorize(unbalanced["shop"])[0]])
    within = build_design(frame, _spec().with_(controls=("staff", "size")))
    assert "mean(price)" in within.terms and "mean(staff)" in within.terms
    assert "mean(size)" not in within.terms  # time-invariant: its own mean
    assert dict(within.mundlak) == {within.terms.index("price"):
                                    within.terms.index("mean(price)"),
                                    within.terms.index("staff"):
                                    within.terms.index("mean(staff)"),
                                    **{within.terms.index(t): within.terms.index(f"mean({t})")
                                       for t in within.terms if t.startswith("quarter[")}}
    fixed = build_design(frame, _spec(unit_effects="fixed").with_(controls=("staff", "size")))
    assert fixed.absorbed == ("size",) and "size" not in fixed.terms
    assert fixed.varying == ()  # the units absorb the district intercepts


def test_fixed_unit_effects_are_the_limit_of_a_huge_unit_sd(unbalanced):
    """Within transformation = flat prior on the unit effects, up to a constant."""
    design = build_design(unbalanced, _spec(unit_effects="fixed"))
    st, names, f = _compiled(design)
    rng = np.random.default_rng(3)
    diffs = []
    for _ in range(2):
        v = rng.normal(scale=0.3, size=len(unconstrained_layout(design, st)))
        par = dict(zip(names, f(v)[2:]))
        _, _, ll = group_effects_and_loglik(st, _draws(par), rng=rng)
        big = 1e4
        dense = _dense_loglik(design, st, par, fixed_sd=big)
        sizes = np.bincount(design.unit_codes)
        # log det of a unit block: n log s^2 + log(1 + n big^2 / s^2) ~ (n - 1) log s^2
        # + log(n big^2), the last term the constant the within transformation drops
        dense += 0.5 * np.sum(np.log(sizes * big**2))
        diffs.append(dense - ll.sum())
    assert diffs[0] == pytest.approx(diffs[1], abs=1e-5)


def test_group_effect_draws_have_the_exact_conditional_mean(unbalanced):
    """Mean of many draws of (cell, group) effects = G W'V^-1 r (the BLUP)."""
    design = build_design(unbalanced, _spec(varying_slope=True))
    st, names, f = _compiled(design)
    v = np.random.default_rng(5).normal(scale=0.3, size=len(unconstrained_layout(design, st)))
    par = dict(zip(names, f(v)[2:]))
    D = 20000
    one = _draws(par)
    many = NestedDraws(*(None if a is None else np.repeat(a, D, axis=0) for a in
                         (one.theta, one.sigma, one.sd_unit, one.sd_cell, one.tau, one.corr)))
    cells, groups, _ = group_effects_and_loglik(st, many, rng=np.random.default_rng(1))
    j = 2
    idx = np.flatnonzero(design.group_codes == j)
    r = design.y[idx] - design.Z[idx] @ par["theta"]
    same_unit = design.unit_codes[idx][:, None] == design.unit_codes[idx][None]
    V = par["sigma"] ** 2 * np.eye(len(idx)) + par["sd_unit"] ** 2 * same_unit
    T = st.n_cells
    W = np.column_stack([np.eye(T)[design.time_codes[idx]],
                         design.Z[idx][:, list(design.varying)]])
    R = np.array([[1, par["corr"]], [par["corr"], 1]])
    G = np.zeros((T + 2, T + 2))
    G[:T, :T] = par["sd_cell"] ** 2 * np.eye(T)
    G[T:, T:] = np.outer(par["tau"], par["tau"]) * R
    V += W @ G @ W.T
    blup = G @ W.T @ np.linalg.solve(V, r)
    got = np.concatenate([cells[:, j].mean(axis=0), groups[:, j].mean(axis=0)])
    sd = np.sqrt(np.diag(G - G @ W.T @ np.linalg.solve(V, W @ G)))
    np.testing.assert_allclose(got, blup, atol=5 * sd.max() / np.sqrt(D) + 1e-12)
