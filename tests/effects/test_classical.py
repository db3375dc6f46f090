"""Classical mediation: OLS, CR1 standard errors, Sobel and the cluster bootstrap."""

import math

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.effects.classical import (
    baron_kenny,
    bootstrap_ab,
    classical_note,
    cluster_codes,
    cluster_crossproducts,
    ols_cr1,
)
from vagg_bayes.spec import Spec


def _xy(n=300, G=15, seed=0):
    rng = np.random.default_rng(seed)
    cl = rng.integers(0, G, n)
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n) + 3])
    y = X @ [1.0, 0.5, -0.2] + rng.normal(size=G)[cl] + rng.normal(size=n)
    return X, y, cl


def test_ols_equals_lstsq_and_statsmodels_cluster_se():
    import statsmodels.api as sm

    X, y, cl = _xy()
    coef, se = ols_cr1(X, y, cl)
    np.testing.assert_allclose(coef, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-12)
    ref = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": cl})
    np.testing.assert_allclose(se, ref.bse, rtol=1e-10)


def test_one_row_per_cluster_is_hc1():
    import statsmodels.api as sm

    X, y, _ = _xy()
    _, se = ols_cr1(X, y, np.arange(len(y)))
    np.testing.assert_allclose(se, sm.OLS(y, X).fit(cov_type="HC1").bse, rtol=1e-10)


def test_cluster_crossproducts_equal_a_loop():
    X, y, cl = _xy(G=7)
    A = np.column_stack([X, y])
    S = cluster_crossproducts(A, cl)
    for g in range(7):
        Ag = A[cl == g]
        np.testing.assert_allclose(S[g].reshape(4, 4), Ag.T @ Ag, rtol=1e-12)


def _mediation_data(n=400, G=20, seed=1):
    rng = np.random.default_rng(seed)
    cl = rng.integers(0, G, n)
    t = rng.random(G)[cl]
    c = rng.normal(size=n)
    m1 = 0.8 * t + 0.3 * c + rng.normal(size=n)
    m2 = -0.5 * t + rng.normal(size=n)
    y = 0.2 * t + 0.4 * m1 + 0.3 * m2 + 0.1 * c + rng.normal(size=n)
    X = np.column_stack([np.ones(n), t, c])
    return X, np.column_stack([m1, m2]), y, cl


def test_bootstrap_replicate_equals_ols_on_resampled_clusters():
    X, M, y, cl = _mediation_data()
    A = np.column_stack([X, M, y])
    boot = bootstrap_ab(A, cl, treatment=1, p=3, k=2, n_boot=5, seed=7)
    G = cl.max() + 1
    picks = np.random.default_rng(7).integers(0, G, size=(5, G))
    for r in (0, 4):
        rows = np.concatenate([np.flatnonzero(cl == g) for g in picks[r]])
        Xr, Mr, yr = X[rows], M[rows], y[rows]
        a = np.linalg.lstsq(Xr, Mr, rcond=None)[0][1]
        b = np.linalg.lstsq(np.column_stack([Xr, Mr]), yr, rcond=None)[0][3:]
        np.testing.assert_allclose(boot[r], a * b, rtol=1e-8)


def test_bootstrap_is_deterministic():
    X, M, y, cl = _mediation_data()
    A = np.column_stack([X, M, y])
    one = bootstrap_ab(A, cl, treatment=1, p=3, k=2, n_boot=50, seed=3)
    two = bootstrap_ab(A, cl, treatment=1, p=3, k=2, n_boot=50, seed=3)
    other = bootstrap_ab(A, cl, treatment=1, p=3, k=2, n_boot=50, seed=4)
    np.testing.assert_array_equal(one, two)
    assert not np.allclose(one, other)


def _frame():
    X, M, y, cl = _mediation_data()
    return pd.DataFrame({"t": X[:, 1], "c": X[:, 2], "m1": M[:, 0], "m2": M[:, 1], "y": y,
                         "city": cl})


def test_baron_kenny_steps_and_sobel():
    frame = _frame()
    spec = Spec(outcome="y", treatment="t", controls=("c",), mediators=("m1", "m2"),
                group="city")
    table = baron_kenny(frame, spec, n_boot=200)
    assert list(table["path"]) == ["m1", "m2", "indirect"]
    cl = cluster_codes(frame, spec)
    X = np.column_stack([np.ones(len(frame)), frame.t, frame.c])
    a1, se_a1 = ols_cr1(X, frame.m1.to_numpy(), cl)
    full, se_full = ols_cr1(np.column_stack([X, frame.m1, frame.m2]), frame.y.to_numpy(), cl)
    row = table.iloc[0]
    assert row.a == pytest.approx(a1[1]) and row.a_se == pytest.approx(se_a1[1])
    assert row.b == pytest.approx(full[3]) and row.b_se == pytest.approx(se_full[3])
    assert row.c_prime == pytest.approx(full[1])
    z = a1[1] * full[3] / math.sqrt(full[3] ** 2 * se_a1[1] ** 2 + a1[1] ** 2 * se_full[3] ** 2)
    assert row.sobel_z == pytest.approx(z)
    assert row.sobel_p == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert row.boot_low < row.ab < row.boot_high
    assert table.iloc[2].ab == pytest.approx(table.ab.iloc[:2].sum())
    assert (table.clusters == 20).all()
    # total effect c: y on t and c
    c, _ = ols_cr1(X, frame.y.to_numpy(), cl)
    assert row.c == pytest.approx(c[1])


def test_clusters_fall_back_to_unit_then_rows():
    frame = _frame().assign(firm=np.arange(400) // 2)
    spec = Spec(outcome="y", treatment="t", mediators=("m1",), unit="firm")
    assert cluster_codes(frame, spec).max() == 199
    assert cluster_codes(frame, spec.with_(unit=None)).max() == 399


def test_note_is_one_sentence_naming_disagreement():
    table = pd.DataFrame({
        "path": ["m1", "m2", "indirect"], "ab": [0.1, 0.05, 0.15], "sobel_z": [3.0, 1.0, np.nan],
        "sobel_p": [0.003, 0.32, np.nan], "boot_low": [0.04, -0.01, 0.05],
        "boot_high": [0.2, 0.1, 0.3], "bayes_sd": [0.03, 0.02, 0.04],
        "bayes_hdi_low": [0.05, 0.01, 0.08], "bayes_hdi_high": [0.16, 0.09, 0.22],
        "clusters": [20, 20, 20],
    })
    note = classical_note(table, city_level=["m2"], skewness={"m1": 0.1, "m2": 0.5},
                          group="city")
    assert "disagree" in note and "m2" in note and "20 clusters" in note
    assert "+0.50 for m2" in note and note.endswith(".") and note.count(". ") == 0
