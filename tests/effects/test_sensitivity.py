"""The sensitivity formula of Imai, Keele and Yamamoto (2010): identities and a simulation."""

import numpy as np
import pytest

from vagg_bayes.effects.sensitivity import (
    RHO_GRID,
    acme_curve,
    crossing_point,
    hdi_columns,
    plot_sensitivity,
    sensitivity_curves,
    sensitivity_table,
)


def _paths(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "up": {"a": rng.normal(0.5, 0.05, n), "b": rng.normal(0.3, 0.03, n),
               "sigma_m": rng.uniform(0.7, 0.9, n), "sigma_y": rng.uniform(0.5, 0.6, n)},
        "down": {"a": rng.normal(-0.4, 0.05, n), "b": rng.normal(0.2, 0.03, n),
                 "sigma_m": rng.uniform(0.7, 0.9, n), "sigma_y": rng.uniform(0.5, 0.6, n)},
    }


def test_acme_at_rho_zero_is_a_times_b():
    p = _paths()["up"]
    curve = acme_curve(p["a"], p["b"], p["sigma_m"], p["sigma_y"], rho=[0.0])
    np.testing.assert_allclose(curve[:, 0], p["a"] * p["b"], rtol=1e-12)


def test_acme_is_zero_at_the_crossing_point():
    p = _paths()["down"]
    r = crossing_point(p["b"], p["sigma_m"], p["sigma_y"])
    s1 = np.sqrt(p["b"] ** 2 * p["sigma_m"] ** 2 + p["sigma_y"] ** 2)
    np.testing.assert_allclose(r, p["b"] * p["sigma_m"] / s1)
    at = np.array([acme_curve(p["a"][i], p["b"][i], p["sigma_m"][i], p["sigma_y"][i],
                              rho=[r[i]])[0, 0] for i in range(20)])
    np.testing.assert_allclose(at, 0.0, atol=1e-12)


def test_formula_undoes_known_confounding():
    """Simulate correlated mediator and outcome errors; ACME(true rho) recovers a*b."""
    rng = np.random.default_rng(4)
    n, a, b, c, rho = 400_000, 0.6, 0.5, 0.2, 0.4
    t = rng.integers(0, 2, n).astype(float)
    e2, z = rng.normal(size=(2, n))
    e3 = 0.7 * (rho * e2 + np.sqrt(1 - rho**2) * z)
    m = a * t + e2
    y = c * t + b * m + e3
    X = np.column_stack([np.ones(n), t])
    a_hat = np.linalg.lstsq(X, m, rcond=None)[0][1]
    s2 = np.std(m - X @ np.linalg.lstsq(X, m, rcond=None)[0])
    XM = np.column_stack([X, m])
    coef = np.linalg.lstsq(XM, y, rcond=None)[0]
    s_y = np.std(y - XM @ coef)
    naive = a_hat * coef[2]
    assert abs(naive - a * b) > 0.1  # confounding biases the naive estimate
    fixed = acme_curve([a_hat], [coef[2]], [s2], [s_y], rho=[rho])[0, 0]
    assert fixed == pytest.approx(a * b, abs=0.01)


def test_hdi_columns_matches_arviz():
    import arviz as az

    x = np.random.default_rng(2).gamma(2.0, size=(1001, 3))
    x[:, 1] = -x[:, 1]  # columns skewed both ways
    low, high = hdi_columns(x, 0.94)
    for j in range(3):
        np.testing.assert_allclose([low[j], high[j]], az.hdi(x[:, j], hdi_prob=0.94))
        # by brute force: the narrowest window of floor(0.94 n) + 1 sorted draws
        s = np.sort(x[:, j])
        k = int(np.floor(0.94 * len(s)))
        i = min(range(len(s) - k), key=lambda i: s[i + k] - s[i])
        assert (low[j], high[j]) == (s[i], s[i + k])
        assert np.mean((x[:, j] >= low[j]) & (x[:, j] <= high[j])) >= 0.94


def test_table_columns_and_crossings():
    paths = _paths()
    table = sensitivity_table(paths)
    assert list(table.columns) == ["mediator", "acme", "rho_zero", "rho_mean", "rho_hdi_low",
                                   "rho_hdi_high", "rho_hdi_zero"]
    for row in table.itertuples():
        p = paths[row.mediator]
        assert row.acme == pytest.approx(np.mean(p["a"] * p["b"]))
        assert row.rho_mean == pytest.approx(crossing_point(p["b"], p["sigma_m"],
                                                            p["sigma_y"]).mean())
        assert row.rho_hdi_low < row.rho_mean < row.rho_hdi_high
        # the mean curve crosses near the typical crossing point; the HDI bound earlier
        assert row.rho_zero == pytest.approx(row.rho_mean, abs=0.02)
        assert 0 < abs(row.rho_hdi_zero) < abs(row.rho_zero)


def test_degenerate_posterior_crosses_exactly_at_r_tilde():
    one = {"a": np.full(50, 0.5), "b": np.full(50, 0.3), "sigma_m": np.full(50, 0.8),
           "sigma_y": np.full(50, 0.6)}
    row = sensitivity_table({"m": one}).iloc[0]
    r = crossing_point(0.3, 0.8, 0.6)
    assert row.rho_zero == pytest.approx(r, abs=1e-4)
    assert row.rho_hdi_zero == pytest.approx(r, abs=1e-4)


def test_hdi_zero_is_zero_when_interval_holds_zero_already():
    wide = {"a": np.random.default_rng(0).normal(0.0, 1.0, 500), "b": np.full(500, 0.3),
            "sigma_m": np.full(500, 0.8), "sigma_y": np.full(500, 0.6)}
    assert sensitivity_table({"m": wide}).iloc[0].rho_hdi_zero == 0.0


def test_plot_writes_png(tmp_path):
    curves = sensitivity_curves(_paths())
    assert set(curves["up"].columns) == {"rho", "mean", "hdi_low", "hdi_high"}
    assert len(curves["up"]) == len(RHO_GRID)
    path = tmp_path / "s.tmp"  # the format is PNG whatever the ending
    plot_sensitivity(curves, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
