"""The entropy-weight index and location quotients against numbers worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.errors import DataError
from vagg_bayes.measures import entropy_index, location_quotient

TOL = 1e-9


def by_hand(columns: dict[str, list[float]], negative=()):
    """Compute the entropy-weight method with loops and math.log."""
    n = len(next(iter(columns.values())))
    norm, ent = {}, {}
    for name, xs in columns.items():
        lo, hi = min(xs), max(xs)
        norm[name] = [((hi - x) if name in negative else (x - lo)) / (hi - lo) for x in xs]
        total = sum(norm[name])
        h = 0.0
        for v in norm[name]:
            p = v / total
            if p > 0:
                h += p * math.log(p)
        ent[name] = -h / math.log(n)
    d = {k: 1 - e for k, e in ent.items()}
    weights = {k: v / sum(d.values()) for k, v in d.items()}
    index = [sum(weights[k] * norm[k][i] for k in columns) for i in range(n)]
    return index, weights


def test_two_indicators_closed_form():
    df = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [3.0, 1.0, 1.0]})
    index, weights = entropy_index(df, indicators=["a", "b"])
    # a' = (0, 1/2, 1): p = (0, 1/3, 2/3); b' = (1, 0, 0): p = (1, 0, 0), entropy 0
    e_a = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3)) / math.log(3)
    w_a = (1 - e_a) / ((1 - e_a) + 1)
    assert weights["a"] == pytest.approx(w_a, abs=TOL)
    assert weights["b"] == pytest.approx(1 - w_a, abs=TOL)
    assert index.tolist() == pytest.approx([1 - w_a, w_a / 2, w_a], abs=TOL)


def test_indicator_matrix_with_a_negative_indicator():
    cols = {"internet": [1.0, 2.0, 3.0, 5.0, 4.0],
            "revenue": [10.0, 10.0, 20.0, 40.0, 12.0],
            "offline": [0.5, 0.4, 0.2, 0.1, 0.3]}
    df = pd.DataFrame(cols, index=[10, 11, 12, 13, 14])
    index, weights = entropy_index(df, indicators=list(cols), negative=["offline"], name="va")
    exp_index, exp_w = by_hand(cols, negative=("offline",))
    for k in cols:
        assert weights[k] == pytest.approx(exp_w[k], abs=TOL)
    assert index.name == "va" and list(index.index) == [10, 11, 12, 13, 14]
    assert index.tolist() == pytest.approx(exp_index, abs=TOL)
    assert weights.sum() == pytest.approx(1.0, abs=TOL)
    # the row that is lowest on every indicator (offline highest) scores 0
    assert index[10] == pytest.approx(0.0, abs=TOL)
    # without "negative" the offline share counts the other way round
    index2, _ = entropy_index(df, indicators=list(cols))
    assert index2.tolist() == pytest.approx(by_hand(cols)[0], abs=TOL)
    assert not np.allclose(index2, index)


def test_by_group_is_each_group_on_its_own():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"year": np.repeat([2019, 2020, 2021], 6),
                       "x1": rng.lognormal(size=18), "x2": rng.gamma(2.0, size=18),
                       "x3": rng.normal(size=18)})
    df = df.sample(frac=1.0, random_state=1)  # groups interleaved
    index, weights = entropy_index(df, indicators=["x1", "x2", "x3"], negative=["x3"],
                                   by="year")
    assert list(weights.index) == [2019, 2020, 2021]
    for year, part in df.groupby("year"):
        cols = {c: part[c].tolist() for c in ("x1", "x2", "x3")}
        exp_index, exp_w = by_hand(cols, negative=("x3",))
        assert index[part.index].tolist() == pytest.approx(exp_index, abs=TOL)
        assert weights.loc[year].tolist() == pytest.approx(list(exp_w.values()), abs=TOL)
    assert index.between(0, 1).all()


def test_zero_log_zero_and_ties_at_the_minimum():
    df = pd.DataFrame({"a": [1.0, 1.0, 1.0, 4.0], "b": [2.0, 3.0, 2.0, 2.5]})
    index, weights = entropy_index(df, indicators=["a", "b"])
    exp_index, exp_w = by_hand({"a": df.a.tolist(), "b": df.b.tolist()})
    assert np.isfinite(index).all() and np.isfinite(weights).all()
    assert index.tolist() == pytest.approx(exp_index, abs=TOL)
    # a is concentrated on one row (entropy 0): it gets the larger weight
    assert weights["a"] == pytest.approx(exp_w["a"], abs=TOL) and weights["a"] > weights["b"]


def test_constant_indicator_is_an_error_naming_it():
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "flat": [5.0, 5.0, 5.0]})
    with pytest.raises(DataError, match="'flat'.*constant"):
        entropy_index(df, indicators=["a", "flat"])
    # constant only within one year
    df = pd.DataFrame({"year": [1, 1, 2, 2], "a": [1.0, 2.0, 3.0, 4.0],
                       "b": [1.0, 2.0, 7.0, 7.0]})
    entropy_index(df, indicators=["a", "b"])  # fine over all rows
    with pytest.raises(DataError, match=r"'b' is constant within the group \['year'\]=2"):
        entropy_index(df, indicators=["a", "b"], by="year")


@pytest.mark.parametrize("kw, words", [
    (dict(indicators=["a", "zz"]), ["'zz'", "not in the data"]),
    (dict(indicators=["a", "s"]), ["'s'", "numeric"]),
    (dict(indicators=["a", "m"]), ["'m'", "missing"]),
    (dict(indicators=["a"], negative=["b"]), ["'b'", "not among indicators"]),
    (dict(indicators=[]), ["empty"]),
    (dict(indicators=["a", "b"], by="g"), ["'g'", "missing"]),
])
def test_index_bad_input(kw, words):
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0], "s": ["x", "y", "z"],
                       "m": [1.0, np.nan, 2.0], "g": [1, None, 2]})
    with pytest.raises(DataError) as info:
        entropy_index(df, **kw)
    for word in words:
        assert word in str(info.value)


def test_location_quotient_by_hand():
    df = pd.DataFrame({
        "city": ["c1", "c1", "c1", "c2", "c2", "c3", "c1", "c1", "c2", "c2", "c3"],
        "sector": ["software", "telecom", "other", "software", "other", "other",
                   "software", "other", "software", "other", "other"],
        "emp": [20, 10, 170, 5, 95, 300, 30, 170, 10, 90, 0],
        "year": [2019] * 6 + [2020] * 5,
    })
    out = location_quotient(df, region="city", sector="sector", employment="emp",
                            target_sector=["software", "telecom"], by="year")
    out = out.set_index(["year", "city"])
    nation_2019 = (20 + 10 + 5) / (200 + 100 + 300)
    assert out.loc[(2019, "c1"), "lq"] == pytest.approx((30 / 200) / nation_2019, abs=TOL)
    assert out.loc[(2019, "c2"), "lq"] == pytest.approx((5 / 100) / nation_2019, abs=TOL)
    assert out.loc[(2019, "c3"), "lq"] == 0.0  # no target-sector rows
    nation_2020 = (30 + 10) / (200 + 100)
    assert out.loc[(2020, "c1"), "lq"] == pytest.approx((30 / 200) / nation_2020, abs=TOL)
    assert out.loc[(2020, "c1"), "target_employment"] == 30
    # a region without employment: NaN with a note
    assert np.isnan(out.loc[(2020, "c3"), "lq"])
    assert "no employment in the region" in out.loc[(2020, "c3"), "note"]
    # one year, one sector label
    single = location_quotient(df[df.year == 2019], region="city", sector="sector",
                               employment="emp", target_sector="software").set_index("city")
    assert single.loc["c2", "lq"] == pytest.approx((5 / 100) / (25 / 600), abs=TOL)


def test_location_quotient_bad_input():
    df = pd.DataFrame({"city": ["a", "a", "b"], "sector": ["ict", "other", "ict"],
                       "emp": [1.0, 2.0, 3.0]})
    kw = dict(region="city", sector="sector", employment="emp")
    with pytest.raises(DataError, match="'software'.*does not occur"):
        location_quotient(df, **kw, target_sector="software")
    with pytest.raises(DataError, match="duplicate"):
        location_quotient(pd.concat([df, df.iloc[[0]]]), **kw, target_sector="ict")
    with pytest.raises(DataError, match="'emp'.*negative"):
        location_quotient(df.assign(emp=-df.emp), **kw, target_sector="ict")
