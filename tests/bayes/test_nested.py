"""The nested collapse (unit, group-time and group effects integrated out) is exact."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vagg_bayes.bayes.design import build_design
from vagg_bayes.bayes.nested import (
    NestedDraws,
    _draw_terms_kernel,
    _group_terms_kernel,
    _numba_jit,
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


# --------------------------------------------------------------------------- the group kernel


def _lower_inverse(chol):
    """Batched inverse of lower-triangular matrices (the former NumPy path)."""
    m = chol.shape[-1]
    out = np.zeros_like(chol)
    diag = 1.0 / np.diagonal(chol, axis1=-2, axis2=-1)
    for i in range(m):
        out[..., i, i] = diag[..., i]
        if i:
            out[..., i, :i] = -(chol[..., i, None, :i] @ out[..., :i, :i])[..., 0, :] \
                * diag[..., i, None]
    return out


def _reference_terms(WY, WW, P, N, e, kc, s2, L):
    """Batched NumPy path (groups first): both sums and their gradients in (e, kc, s2, L).

    ``sum log det M_j`` and ``sum g_j'M_j^-1 g_j`` as the graph before the kernel computed
    them (Cholesky factors, their inverses, ``M^-1 = C^-T C^-1``).
    """
    m = L.shape[0]
    H = WY - np.einsum("c,jcak->jak", kc, P)
    h = H @ e / s2
    K = (WW - np.einsum("c,jcab->jab", kc, N)) / s2
    M = np.eye(m) + np.einsum("ra,jrs,sb->jab", L, K, L)
    g = h @ L
    try:
        chol = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return np.inf, 0.0, None, None
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum()
    cinv = _lower_inverse(chol)
    inv = np.swapaxes(cinv, -1, -2) @ cinv
    b = (inv @ g[..., None])[..., 0]
    quad = np.einsum("ja,ja->", g, b)

    def grads(dM, dg):  # chain rule from (dM, dg) per group to (e, kc, s2, L)
        dK = np.einsum("ra,jab,sb->jrs", L, dM, L)
        dh = dg @ L.T
        dL = 2.0 * np.einsum("jrs,sa,jab->rb", K, L, dM) + np.einsum("jr,jb->rb", h, dg)
        Pe = np.einsum("jcak,k->jca", P, e)
        d_kc = -(np.einsum("jcab,jab->c", N, dK) + np.einsum("jca,ja->c", Pe, dh)) / s2
        d_e = np.einsum("jak,ja->k", H, dh) / s2
        d_s2 = -(np.sum(K * dK) + np.sum(h * dh)) / s2
        return d_e, d_kc, d_s2, dL

    return (logdet, quad, grads(inv, np.zeros_like(g)),
            grads(-b[:, :, None] * b[:, None, :], 2.0 * b))


def _kernel_case(rng, J=7, T=3, q=2, k=4, C=2):
    """Random statistics (positive semi-definite ``K``) and ``L`` = diag(sd_cell I_T, chol S).

    ``L`` also as the model passes it: its nonzero entries' rows and columns.
    """
    m = T + q
    A = rng.normal(size=(J, m, 6))
    WW = A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(m)
    N = np.repeat(0.05 * A[:, None, :, :2] @ np.swapaxes(A[:, None, :, :2], -1, -2), C, axis=1)
    WY = rng.normal(size=(J, m, k))
    P = 0.1 * rng.normal(size=(J, C, m, k))
    e = np.concatenate([[1.0], rng.normal(size=k - 1)])
    kc = rng.uniform(0.05, 0.3, C)
    L = np.zeros((m, m))
    L[np.arange(T), np.arange(T)] = 0.7
    if q:
        L[T:, T:] = np.linalg.cholesky(np.array([[0.8, 0.3], [0.3, 0.5]])[:q, :q])
    rows, cols = np.nonzero(L)
    return WY, WW, P, N, e, kc, 0.6, L, rows.astype(np.int64), cols.astype(np.int64)


def _kernel(WY, WW, P, N, e, kc, s2, L, rows, cols):
    def last(x):
        return np.ascontiguousarray(np.moveaxis(x, 0, -1))

    return _group_terms_kernel()(last(WY), last(WW), last(P), last(N), e, kc, s2,
                                 L[rows, cols], rows, cols)


@pytest.mark.parametrize("shape", [dict(), dict(C=0), dict(q=1, C=1, J=70), dict(T=0, q=1)])
def test_group_kernel_equals_the_numpy_path(shape):
    """Values and gradients of the numba kernel = the batched NumPy path to 1e-10.

    And the gradients = finite differences of that path.
    """
    case = _kernel_case(np.random.default_rng(11), **shape)
    WY, WW, P, N, e, kc, s2, L, rows, cols = case
    logdet, quad, g_ld, g_q = _kernel(*case)
    ref_ld, ref_q, ref_g_ld, ref_g_q = _reference_terms(*case[:8])
    assert logdet == pytest.approx(ref_ld, rel=1e-10, abs=1e-10)
    assert quad == pytest.approx(ref_q, rel=1e-10, abs=1e-10)
    k, C = len(e), len(kc)
    for got, ref in ((g_ld, ref_g_ld), (g_q, ref_g_q)):
        d_e, d_kc, d_s2, dL = ref
        want = np.concatenate([d_e, d_kc, [d_s2], dL[rows, cols]])
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    # the formulas themselves: central differences of the NumPy path
    h = 1e-6
    theta = np.concatenate([e, kc, [s2], L[rows, cols]])

    def unpack(x):
        L_x = np.zeros_like(L)
        L_x[rows, cols] = x[k + C + 1:]
        return (WY, WW, P, N, x[:k], x[k:k + C], x[k + C], L_x)

    for out, got in ((0, g_ld), (1, g_q)):
        fd = [(_reference_terms(*unpack(theta + h * u))[out]
               - _reference_terms(*unpack(theta - h * u))[out]) / (2 * h)
              for u in np.eye(len(theta))]
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-6)


def test_group_kernel_not_positive_definite_gives_infinite_logdet():
    """As before the kernel: an infinite log-determinant, zero quadratic form, no gradient."""
    case = list(_kernel_case(np.random.default_rng(12)))
    case[6] = -0.6  # a negative variance: M = I + L'KL indefinite
    assert _reference_terms(*case[:8])[0] == np.inf
    logdet, quad, g_ld, g_q = _kernel(*case)
    assert logdet == np.inf and quad == 0.0
    assert not g_ld.any() and not g_q.any()


def test_numba_kernels_compile_without_a_writable_cache(monkeypatch):
    """A read-only install (numba finds no cache folder): compiled per process, silently."""
    from numba.core import caching

    def add_one(x):
        return x + 1.0

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _numba_jit(add_one)(1.0) == 2.0


def test_draw_kernel_equals_the_numpy_path():
    """Per draw and group: log det M, g'M^-1 g and z = M^-1 g + C^-T eps to 1e-10.

    As NumPy's batched Cholesky factor and solves (the path before the kernel) give them.
    """
    rng = np.random.default_rng(13)
    WY, WW, P, N, e, kc, s2, L, rows, cols = _kernel_case(rng, J=6, C=2)
    D, m = 4, L.shape[0]
    kc_d = kc * rng.uniform(0.5, 1.5, (D, 1))
    s2_d = s2 * rng.uniform(0.5, 1.5, D)
    L_d = L * rng.uniform(0.5, 1.5, (D, 1, 1))
    g = rng.normal(size=(D, 6, m))
    eps = rng.normal(size=(D, 6, m))
    ok, logdet, quad, z = _draw_terms_kernel()(WW, N, kc_d, s2_d, L_d[:, rows, cols].copy(),
                                               rows, cols, g, eps)
    assert ok
    K = (WW - np.einsum("dc,jcab->djab", kc_d, N)) / s2_d[:, None, None, None]
    M = np.eye(m) + np.swapaxes(L_d, -1, -2)[:, None] @ K @ L_d[:, None]
    chol = np.linalg.cholesky(M)
    mean = np.linalg.solve(M, g[..., None])[..., 0]
    np.testing.assert_allclose(logdet, 2 * np.log(np.diagonal(chol, 0, -2, -1)).sum(-1),
                               rtol=1e-10)
    np.testing.assert_allclose(quad, np.einsum("dja,dja->dj", g, mean), rtol=1e-10)
    want = mean + np.linalg.solve(np.swapaxes(chol, -1, -2), eps[..., None])[..., 0]
    np.testing.assert_allclose(z, want, rtol=1e-10, atol=1e-12)
    assert not _draw_terms_kernel()(WW, N, kc_d, -s2_d, L_d[:, rows, cols].copy(), rows, cols,
                                    g, eps)[0]
