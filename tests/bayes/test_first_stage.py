"""First-stage strength (vagg_bayes.bayes.first_stage) against statsmodels, by hand."""

import numpy as np
import pytest
import statsmodels.api as sm

from vagg_bayes.bayes.first_stage import STOCK_YOGO_10PCT_SIZE, first_stage_strength


def _data(n=400, G=25, m=2, strength=0.3, seed=0):
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, G, n)
    Z = rng.normal(size=(n, m)) + 0.5 * rng.normal(size=(G, m))[cluster]
    w = rng.normal(size=n)
    X = np.column_stack([np.ones(n), w])
    v = 1.0 + strength * Z.sum(axis=1) + 0.7 * w + rng.normal(size=n) \
        + 0.8 * rng.normal(size=G)[cluster]
    return v, Z, X, cluster


def test_partial_r2_and_f_match_statsmodels():
    v, Z, X, cluster = _data()
    fs = first_stage_strength(v, Z, X, instruments=("p", "q"), clusters=cluster,
                              cluster="town")
    full = sm.OLS(v, np.column_stack([Z, X])).fit()
    restricted = sm.OLS(v, X).fit()
    partial = (restricted.ssr - full.ssr) / restricted.ssr
    assert fs.partial_r2 == pytest.approx(partial, rel=1e-10)
    f_classical, _, df_diff = full.compare_f_test(restricted)
    assert df_diff == 2
    assert fs.f_classical == pytest.approx(f_classical, rel=1e-10)
    robust = sm.OLS(v, np.column_stack([Z, X])).fit(
        cov_type="cluster", cov_kwds={"groups": cluster, "use_correction": True})
    wald = robust.wald_test(np.eye(4)[:2], use_f=True, scalar=True)
    assert fs.f_cluster == pytest.approx(float(wald.statistic), rel=1e-8)
    assert fs.n_clusters == 25 and fs.f == fs.f_cluster
    assert fs.coefficients["p"] == pytest.approx(full.params[0], rel=1e-10)


def test_without_clusters_uses_classical_f():
    v, Z, X, _ = _data(m=1)
    fs = first_stage_strength(v, Z, X, instruments=("p",))
    assert fs.f_cluster is None and fs.f == fs.f_classical
    assert "classical" in fs.f_kind
    # one instrument: F is the squared t statistic of its coefficient
    t = sm.OLS(v, np.column_stack([Z, X])).fit().tvalues[0]
    assert fs.f_classical == pytest.approx(t**2, rel=1e-10)


def test_weak_warning_below_ten_and_stock_yogo_note():
    v, Z, X, cluster = _data(m=1, strength=0.02, seed=1)
    weak = first_stage_strength(v, Z, X, instruments=("p",), clusters=cluster, cluster="town")
    assert weak.f < 10 and weak.weak
    text = weak.warning()
    assert "WEAK INSTRUMENT" in text and "Staiger" in text and "Stock–Yogo" in text
    assert "16.38" in text and "cluster-robust" in text
    d = weak.to_dict()
    assert d["weak"] is True and d["n_instruments"] == 1 and d["warning"] == text
    v, Z, X, cluster = _data(m=1, strength=1.0, seed=1)
    strong = first_stage_strength(v, Z, X, instruments=("p",), clusters=cluster,
                                  cluster="town")
    assert strong.f > STOCK_YOGO_10PCT_SIZE[1] and not strong.weak
    assert strong.warning() is None and strong.to_dict()["warning"] is None
