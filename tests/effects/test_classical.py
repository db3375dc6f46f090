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
    within_design,
)
from vagg_bayes.errors import DataError
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


# ------------------------------------------------ firm and year fixed effects
# Arbitrary column names: nothing below assumes the synthetic panel's.
FE_SPEC = Spec(outcome="resil", treatment="va_cy", controls=("lev", "state_owned", "sector",
                                                              "age"),
               mediators=("chan_cost", "hub_city"), unit="firm_code", group="metro",
               time="yr", unit_effects="fixed")
TRUE_B = 0.5


def _firm_panel(seed=3, n_city=16, n_year=8):
    """Unbalanced firm-year panel, firms nested in cities, with a firm effect that drives
    both the firm-level mediator and the outcome (so pooled OLS biases its slope), a
    city-year treatment, a city-year mediator, time-invariant controls, a firm age
    (collinear with the firm and year effects) and one singleton firm."""
    rng = np.random.default_rng(seed)
    treat = rng.normal(size=(n_city, n_year))
    hub = 0.6 * treat + rng.normal(size=(n_city, n_year))
    year_fx = rng.normal(size=n_year)
    rows = []
    firm = 100
    for city in range(n_city):
        for _ in range(rng.integers(3, 7)):
            start = int(rng.integers(0, n_year - 1))
            stop = int(rng.integers(start + 2, n_year + 1))
            alpha, owned = rng.normal(), float(rng.random() < 0.3)
            sector, founded = rng.choice(["food", "tech", "auto"]), int(rng.integers(1980, 2005))
            for j in range(start, stop):
                rows.append((firm, f"c{city:02d}", 2011 + j, alpha, owned, sector, founded,
                             treat[city, j], hub[city, j], year_fx[j]))
            firm += 7
    rows.append((firm, "c00", 2013, 0.0, 0.0, "food", 1990, treat[0, 2], hub[0, 2],
                 year_fx[2]))
    df = pd.DataFrame(rows, columns=["firm_code", "metro", "yr", "alpha", "state_owned",
                                     "sector", "founded", "va_cy", "hub_city", "yfx"])
    n = len(df)
    df["age"] = df.yr - df.founded
    df["lev"] = 0.5 * df.alpha + rng.normal(size=n)
    df["chan_cost"] = 0.7 * df.va_cy + 1.5 * df.alpha + 0.3 * df.lev + rng.normal(size=n)
    df["resil"] = (0.25 * df.va_cy + TRUE_B * df.chan_cost + 0.3 * df.hub_city
                   + 2.0 * df.alpha + 0.2 * df.lev + 0.4 * df.state_owned + df.yfx
                   + rng.normal(size=n))
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True)  # rows in any order


def _panel_ols(df, dep, exog, *, with_se):
    """linearmodels' two-way FE fit; with_se: firm effects absorbed, year dummies and a
    constant explicit, CR1 by city with pyfixest's factor G/(G-1) (N-1)/(N-k), k = all
    explicit columns (group_debias gives G/(G-1) (N-1)/N, debiased N/(N-k))."""
    from linearmodels.panel import PanelOLS

    d = df.set_index(["firm_code", "yr"])
    if not with_se:
        res = PanelOLS(d[dep], d[exog], entity_effects=True, time_effects=True).fit()
        return res.params, None
    years = pd.get_dummies(d.index.get_level_values("yr"), prefix="y", drop_first=True,
                           dtype=float).set_axis(d.index)
    X = pd.concat([pd.Series(1.0, d.index, name="const"), d[exog], years], axis=1)
    res = PanelOLS(d[dep], X, entity_effects=True).fit(
        cov_type="clustered", clusters=pd.DataFrame(pd.factorize(d.metro)[0], d.index),
        debiased=True, auto_df=False, count_effects=False, group_debias=True)
    return res.params, res.std_errors


def test_fixed_effects_match_linearmodels_panel_ols():
    df = _firm_panel()
    table = baron_kenny(df, FE_SPEC, n_boot=200).set_index("path")
    multi = df[df.groupby("firm_code").firm_code.transform("size") > 1]  # no singletons
    steps = {  # coefficient -> (table column, dependent, regressors)
        "a:chan_cost": ("a", "chan_cost", ["va_cy", "lev"]),
        "a:hub_city": ("a", "hub_city", ["va_cy", "lev"]),
        "c": ("c", "resil", ["va_cy", "lev"]),
        "c_prime": ("c_prime", "resil", ["va_cy", "chan_cost", "hub_city", "lev"]),
        "b:chan_cost": ("b", "resil", ["va_cy", "chan_cost", "hub_city", "lev"]),
        "b:hub_city": ("b", "resil", ["va_cy", "chan_cost", "hub_city", "lev"]),
    }
    coef_diff, se_rel = [], []
    for key, (col, dep, exog) in steps.items():
        path = key.split(":")[1] if ":" in key else "chan_cost"
        name = path if col == "b" else "va_cy"
        two_way, _ = _panel_ols(df, dep, exog, with_se=False)
        explicit, se = _panel_ols(multi, dep, exog, with_se=True)
        ours = table.loc[path, col]
        assert ours == pytest.approx(two_way[name], abs=1e-8), key
        assert ours == pytest.approx(explicit[name], abs=1e-8), key
        assert table.loc[path, f"{col}_se"] == pytest.approx(se[name], rel=1e-6), key
        coef_diff.append(abs(ours - two_way[name]))
        se_rel.append(abs(table.loc[path, f"{col}_se"] / se[name] - 1))
    assert max(coef_diff) < 1e-8 and max(se_rel) < 1e-6
    assert (table.fixed_effects == "firm_code + yr").all()
    assert table.absorbed.iloc[0].split("; ") == ["state_owned", "sector[food]",
                                                  "sector[tech]", "age"]
    assert (table.clusters == 16).all()


def test_fixed_effects_remove_the_bias_of_the_mediator_slope():
    df = _firm_panel()
    fe = baron_kenny(df, FE_SPEC, n_boot=50).set_index("path")
    pooled = baron_kenny(df, FE_SPEC.with_(unit_effects="none"), n_boot=50).set_index("path")
    assert pooled.loc["chan_cost", "b"] - TRUE_B > 0.3  # the firm effect leaks into b
    assert pooled.loc["chan_cost", "b"] - TRUE_B > 5 * pooled.loc["chan_cost", "b_se"]
    assert abs(fe.loc["chan_cost", "b"] - TRUE_B) < 0.1
    assert abs(fe.loc["chan_cost", "b"] - TRUE_B) < 3 * fe.loc["chan_cost", "b_se"]
    assert (pooled.fixed_effects == "none").all() and (pooled.absorbed == "").all()


def test_unit_effects_none_or_no_repeated_units_is_pooled_ols():
    df = _firm_panel().drop(columns=["sector", "age", "state_owned"])
    spec = FE_SPEC.with_(controls=("lev",))
    pooled = baron_kenny(df, spec.with_(unit=None), n_boot=20)
    off = baron_kenny(df, spec.with_(unit_effects="none"), n_boot=20)
    pd.testing.assert_frame_equal(off, pooled)
    once = df.drop_duplicates("firm_code")  # every unit on one row: nothing to absorb
    assert baron_kenny(once, spec, n_boot=20).fixed_effects.eq("none").all()
    pd.testing.assert_frame_equal(baron_kenny(once, spec, n_boot=20),
                                  baron_kenny(once, spec.with_(unit=None), n_boot=20))


def test_fixed_effects_bootstrap_replicate_equals_lsdv_on_resampled_cities():
    df = _firm_panel()
    w = within_design(df, FE_SPEC)
    p, k = w.X.shape[1], w.M.shape[1]
    A = np.column_stack([w.X, w.M, w.y])
    boot = bootstrap_ab(A, w.clusters, treatment=w.treatment_index, p=p, k=k, n_boot=3,
                        seed=5, intercept=False)
    kept = df.iloc[w.rows].reset_index(drop=True)
    G = int(w.clusters.max()) + 1
    picks = np.random.default_rng(5).integers(0, G, size=(3, G))
    for r in range(3):
        parts = [kept[w.clusters == g].assign(firm_code=lambda d, i=i: f"{i}-" + d.firm_code
                                              .astype(str)) for i, g in enumerate(picks[r])]
        rs = pd.concat(parts, ignore_index=True)
        D = pd.get_dummies(rs[["firm_code", "yr"]].astype(str), drop_first=False,
                           dtype=float).to_numpy()
        X = np.column_stack([rs.va_cy, rs.lev, D])
        Mr = rs[["chan_cost", "hub_city"]].to_numpy()
        a = np.linalg.lstsq(X, Mr, rcond=None)[0][0]
        b = np.linalg.lstsq(np.column_stack([X, Mr]), rs.resil.to_numpy(),
                            rcond=None)[0][-2:]
        np.testing.assert_allclose(boot[r], a * b, rtol=1e-7)


def test_absorbed_mediator_is_nan_and_absorbed_treatment_is_an_error():
    df = _firm_panel().assign(firm_size=lambda d: d.groupby("firm_code").lev.transform("mean"))
    spec = FE_SPEC.with_(mediators=("chan_cost", "firm_size"))
    table = baron_kenny(df, spec, n_boot=50).set_index("path")
    assert np.isnan(table.loc["firm_size", ["a", "b", "ab", "sobel_p"]].astype(float)).all()
    assert np.isfinite(table.loc["chan_cost", ["a", "b", "ab", "sobel_p"]].astype(float)).all()
    assert "firm_size" in table.absorbed.iloc[0]
    with pytest.raises(DataError, match="does not vary within units"):
        baron_kenny(df, FE_SPEC.with_(treatment="state_owned", controls=("lev",)), n_boot=10)


def test_note_names_the_fixed_effects_and_absorbed_regressors():
    df = _firm_panel()
    table = baron_kenny(df, FE_SPEC, n_boot=50)
    table = table.assign(bayes_sd=0.05, bayes_hdi_low=0.01, bayes_hdi_high=0.2)
    note = classical_note(table, city_level=["hub_city"], skewness={"chan_cost": 0.2},
                          group="metro")
    assert "firm_code + yr fixed effects" in note and "clustered by metro" in note
    assert "absorb and drop state_owned, sector[food], sector[tech], age" in note
    assert "pooled OLS" not in note
    assert note.endswith(".") and note.count(". ") == 0
