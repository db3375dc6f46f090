"""Counterfactual-path measures against the textbook formulas and hand-worked gaps.

The closed-form posterior against explicit matrices, depth / loss / recovery time by hand,
the draws against the posterior, the undefined cases.
"""

import math

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.errors import DataError
from vagg_bayes.measures import TrendPrior, counterfactual_resilience, gap_measures

TOL = 1e-9

PRE = {2005: 100.0, 2006: 112.0, 2007: 118.0, 2008: 135.0}  # before the 2009 shock
POST = {2009: 90.0, 2010: 140.0, 2011: 178.0, 2012: 200.0}


def panel() -> pd.DataFrame:
    rows = [("a", y, x) for y, x in {**PRE, **POST}.items()]
    rows += [("b", y, 50.0 * 1.05 ** (y - 2005)) for y in range(2005, 2013)]  # no shock
    rows += [("short", y, 10.0) for y in (2008, 2009, 2010)]  # one pre-shock year
    rows += [("zero_pre", y, 0.0 if y == 2006 else 20.0) for y in range(2005, 2011)]
    rows += [("gap", y, 30.0) for y in (2005, 2006, 2007, 2008, 2009, 2011)]  # no 2010
    rows += [("exit", y, 0.0 if y == 2010 else 40.0) for y in range(2005, 2011)]
    return pd.DataFrame(rows, columns=["firm", "year", "x"])


def posterior_by_hand(years, values, s, prior: TrendPrior):
    """Normal-inverse-gamma posterior with explicit matrices (textbook formulas)."""
    X = np.array([[1.0, y - (s - 1)] for y in years])
    y = np.log(np.array(values))
    L0 = np.diag([prior.level_sd ** -2, prior.slope_sd ** -2])
    P = L0 + X.T @ X
    V = np.linalg.inv(P)
    m = V @ (X.T @ y)
    shape = prior.sigma_shape + len(y) / 2
    scale = prior.sigma_scale + 0.5 * (y @ y - m @ P @ m)
    return m, V, shape, scale


def run(**kw):
    args = dict(firm="firm", year="year", exports="x", shock_years=2009, draws=400, seed=1,
                return_draws=True)
    args.update(kw)
    return counterfactual_resilience(panel(), **args)


@pytest.mark.parametrize("prior", [TrendPrior(),
                                   TrendPrior(level_sd=2.0, slope_sd=0.5, sigma_shape=3.0,
                                              sigma_scale=0.05)])
def test_posterior_matches_the_textbook_formulas(prior):
    out, draws = run(prior=prior)
    row = out.index[out.firm == "a"][0]
    post = draws["posterior"].loc[row]
    m, V, shape, scale = posterior_by_hand(list(PRE), list(PRE.values()), 2009, prior)
    assert post["m_level"] == pytest.approx(m[0], abs=TOL)
    assert post["m_slope"] == pytest.approx(m[1], abs=TOL)
    assert [post["v_level"], post["v_cov"], post["v_slope"]] == pytest.approx(
        [V[0, 0], V[0, 1], V[1, 1]], abs=TOL)
    assert post["shape"] == pytest.approx(shape, abs=TOL)
    assert post["scale"] == pytest.approx(scale, abs=TOL)
    assert out.loc[row, "trend_level"] == pytest.approx(m[0], abs=TOL)
    assert out.loc[row, "n_pre"] == 4 and out.loc[row, "window"] == 4


def test_point_measures_by_hand():
    out, draws = run(epsilon=0.05, consecutive=2)
    row = out.index[out.firm == "a"][0]
    m, *_ = posterior_by_hand(list(PRE), list(PRE.values()), 2009, TrendPrior())
    gaps = [m[0] + m[1] * (y - 2008) - math.log(x) for y, x in POST.items()]
    assert out.loc[row, "depth_point"] == pytest.approx(max(0.0, max(gaps)), abs=TOL)
    assert out.loc[row, "loss_point"] == pytest.approx(sum(max(g, 0.0) for g in gaps),
                                                       abs=TOL)
    first = next(k for k in range(len(gaps) - 1) if gaps[k] <= 0.05 and gaps[k + 1] <= 0.05)
    assert out.loc[row, "recovery_time_point"] == first == 2  # back on the path in 2011
    # posterior means are near the point values; the interval holds the posterior mean
    assert out.loc[row, "depth_hdi_low"] <= out.loc[row, "depth"] <= out.loc[row, "depth_hdi_high"]
    assert out.loc[row, "depth"] == pytest.approx(out.loc[row, "depth_point"], abs=0.05)
    assert draws["depth"].shape == (len(out), 400)


def test_gap_measures_by_hand():
    cf = np.array([[1.0, 1.0, 1.0, 1.0, 1.0]])
    actual = np.array([[0.7, 0.9, 0.97, 1.2, 0.99]])
    valid = np.ones_like(cf, dtype=bool)
    depth, loss, rec = gap_measures(cf, actual, valid, epsilon=0.05, consecutive=2)
    # gaps 0.3, 0.1, 0.03, -0.2, 0.01
    assert depth[0] == pytest.approx(0.3, abs=TOL)
    assert loss[0] == pytest.approx(0.3 + 0.1 + 0.03 + 0.01, abs=TOL)
    assert rec[0] == 2  # gaps at k = 2, 3 are within 0.05
    # scaled gaps 0.6, 0.2, 0.06, -0.4, 0.02: within 0.1 from k = 2 on, three in a row
    depth, loss, rec = gap_measures(cf, actual, valid, scale=0.5, epsilon=0.1,
                                    consecutive=3)
    assert depth[0] == pytest.approx(0.6, abs=TOL) and loss[0] == pytest.approx(0.88, abs=TOL)
    assert rec[0] == 2
    # never within epsilon for 2 years in a row -> censored (NaN); outside the window ignored
    valid = np.array([[True, True, True, False, False]])
    _, loss, rec = gap_measures(cf, actual, valid, epsilon=0.02, consecutive=2)
    assert np.isnan(rec[0]) and loss[0] == pytest.approx(0.43, abs=TOL)
    # never below the path: depth 0, recovered at once
    d, l_, r = gap_measures(cf, cf + 0.1, np.ones_like(cf, dtype=bool))
    assert d[0] == 0 and l_[0] == 0 and r[0] == 0


def test_draws_follow_the_posterior():
    out, draws = run(draws=40_000, seed=3)
    row = out.index[out.firm == "a"][0]
    post = draws["posterior"].loc[row]
    sigma2_mean = post["scale"] / (post["shape"] - 1)
    slope = draws["slope"][row]
    # E[b] = m; Var[b] = V_bb E[sigma^2]  (Student-t marginal)
    sd = math.sqrt(post["v_slope"] * sigma2_mean)
    assert abs(slope.mean() - post["m_slope"]) < 5 * sd / math.sqrt(len(slope))
    assert slope.var() == pytest.approx(sd ** 2, rel=0.05)
    s2 = draws["sigma"][row] ** 2
    assert s2.mean() == pytest.approx(sigma2_mean, rel=0.05)
    level = draws["level"][row]
    assert abs(level.mean() - post["m_level"]) < 5 * math.sqrt(post["v_level"] * sigma2_mean
                                                               / len(level))


def test_undefined_cases_have_notes():
    out, draws = run()
    out = out.set_index("firm")
    assert np.isnan(out.loc["short", "depth"])
    assert "fewer than min_pre pre-shock years" in out.loc["short", "note"]
    assert "zero exports in the pre-shock window" in out.loc["zero_pre", "note"]
    assert "a year without a record inside the post-shock window" in out.loc["gap", "note"]
    assert "zero exports inside the post-shock window" in out.loc["exit", "note"]
    for firm in ("short", "zero_pre", "gap", "exit"):
        assert np.isnan(out.loc[firm, ["depth", "loss", "depth_point"]].astype(float)).all()
    assert out.loc["a", "note"] == "" and out.loc["b", "note"] == ""
    # no shock: the path continues the trend, so depth and loss are near 0
    assert out.loc["b", "depth_point"] < 1e-3 and out.loc["b", "recovery_time_point"] == 0
    # pre_years and horizon narrow the windows
    narrow, _ = run(pre_years=3, horizon=2)
    narrow = narrow.set_index("firm")
    assert narrow.loc["a", "n_pre"] == 3 and narrow.loc["a", "window"] == 2
    one_year, _ = run(horizon=1)  # the missing 2010 lies outside a one-year window
    one_year = one_year.set_index("firm")
    assert one_year.loc["gap", "note"] == "" and one_year.loc["gap", "window"] == 1


def test_same_seed_same_draws():
    a = run(seed=7)[0]
    b = run(seed=7)[0]
    pd.testing.assert_frame_equal(a, b)
    c = run(seed=8)[0]
    assert not np.allclose(a["depth"].dropna(), c["depth"].dropna())


def test_bad_arguments():
    for kw, word in ((dict(scale="log"), "scale"), (dict(draws=0), "draws"),
                     (dict(prior=TrendPrior(sigma_scale=-1.0)), "sigma_scale"),
                     (dict(horizon=0), "horizon"), (dict(shock_years=1990), "1990")):
        with pytest.raises(DataError, match=word):
            run(**kw)


@pytest.mark.parametrize("scale", ["sd", "mean"])
def test_gap_scales_by_hand(scale):
    out, _ = run(scale=scale)
    row = out.index[out.firm == "a"][0]
    m, *_ = posterior_by_hand(list(PRE), list(PRE.values()), 2009, TrendPrior())
    logs = [math.log(x) for x in PRE.values()]
    mean = sum(logs) / len(logs)
    c = (math.sqrt(sum((v - mean) ** 2 for v in logs) / (len(logs) - 1)) if scale == "sd"
         else abs(mean))
    gaps = [(m[0] + m[1] * (y - 2008) - math.log(x)) / c for y, x in POST.items()]
    assert out.loc[row, "depth_point"] == pytest.approx(max(gaps), abs=TOL)
    assert out.loc[row, "loss_point"] == pytest.approx(sum(max(g, 0.0) for g in gaps), abs=TOL)
    # one pre-shock year has no SD: undefined, with a note (not a silent zero)
    one, _ = run(scale=scale, min_pre=1)
    one = one.set_index("firm")
    if scale == "sd":
        assert np.isnan(one.loc["short", "depth"])
        assert "scale is zero or undefined" in one.loc["short", "note"]
    else:
        assert not np.isnan(one.loc["short", "depth"])
