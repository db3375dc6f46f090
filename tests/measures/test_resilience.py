"""Firm and city resilience against numbers worked out by hand (to 1e-9).

Also every undefined case with its note, and every bad input as a DataError naming the
column.
"""

import math

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.errors import DataError
from vagg_bayes.measures import annual_resilience, city_resilience, firm_resilience

TOL = 1e-9

# Two industries with several firms (A: 1, 2, 3, 8; B: 4, 5, 7), a firm alone in its
# industry (6, industry C), an industry whose leave-one-out growth is exactly zero (D),
# a firm with zero exports before the shock (8), a firm whose exports fall to zero the
# year after (5) and a firm without a record in the year before the shock (7).
RECORDS = {
    1: ("A", {2007: 90, 2008: 100, 2009: 80, 2010: 120, 2011: 130}),
    2: ("A", {2007: 50, 2008: 50, 2009: 45, 2010: 40, 2011: 60}),
    3: ("A", {2007: 60, 2008: 50, 2009: 35, 2010: 70, 2011: 40}),
    8: ("A", {2008: 0, 2009: 10, 2010: 20}),
    4: ("B", {2007: 200, 2008: 200, 2009: 150, 2010: 180, 2011: 210}),
    5: ("B", {2007: 100, 2008: 100, 2009: 100, 2010: 0, 2011: 50}),
    7: ("B", {2007: 30, 2009: 20, 2010: 25, 2011: 40}),
    6: ("C", {2008: 10, 2009: 8, 2010: 9}),
    9: ("D", {2008: 40, 2009: 30, 2010: 35}),
    10: ("D", {2008: 50, 2009: 50, 2010: 50}),
}


def records() -> pd.DataFrame:
    rows = [(f, ind, y, float(x)) for f, (ind, by_year) in RECORDS.items()
            for y, x in by_year.items()]
    df = pd.DataFrame(rows, columns=["firm", "sector", "yr", "value"])
    return df.sample(frac=1.0, random_state=3).reset_index(drop=True)  # order must not matter


def ratio(gi, gk):
    return (gi - gk) / abs(gk)


def measure(form="ratio", shocks=2009, **kw):
    out = firm_resilience(records(), firm="firm", industry="sector", year="yr",
                          exports="value", shock_years=shocks, form=form, **kw)
    return out.set_index(["firm", "yr"])


def test_columns_keyed_by_callers_names():
    out = firm_resilience(records(), firm="firm", industry="sector", year="yr",
                          exports="value", shock_years=[2009, 2011])
    assert list(out.columns[:3]) == ["firm", "sector", "yr"]
    assert {"resistance", "recovery", "survived", "years_to_recover", "recovery_censored",
            "note"} <= set(out.columns)
    # one row per firm and shock (firms with a record around the shock), sorted
    assert not out.duplicated(["firm", "yr"]).any()
    assert out[["firm", "yr"]].equals(out[["firm", "yr"]].sort_values(["firm", "yr"]))
    assert set(out.loc[out.yr == 2009, "firm"]) == set(RECORDS)
    # firms 6, 8, 9, 10 end in 2010: still a row for 2011 (a record the year before)
    assert set(out.loc[out.yr == 2011, "firm"]) == set(RECORDS)


def test_ratio_form_by_hand():
    out = measure("ratio")
    # firm 1 (A): others in A are 2, 3 and 8
    g1 = 80 / 100 - 1
    gA = (45 + 35 + 10) / (50 + 50 + 0) - 1
    assert out.loc[(1, 2009), "resistance"] == pytest.approx(ratio(g1, gA), abs=TOL)
    assert out.loc[(1, 2009), "resistance"] == pytest.approx(-1.0, abs=TOL)
    g1r = 120 / 80 - 1
    gAr = (40 + 70 + 20) / (45 + 35 + 10) - 1
    assert out.loc[(1, 2009), "recovery"] == pytest.approx(ratio(g1r, gAr), abs=TOL)
    assert out.loc[(1, 2009), "recovery"] == pytest.approx(0.125, abs=TOL)
    # firm 3
    assert out.loc[(3, 2009), "resistance"] == pytest.approx(
        ratio(35 / 50 - 1, (80 + 45 + 10) / (100 + 50 + 0) - 1), abs=TOL)
    assert out.loc[(3, 2009), "recovery"] == pytest.approx(
        ratio(70 / 35 - 1, (120 + 40 + 20) / (80 + 45 + 10) - 1), abs=TOL)
    # firm 4 (B): firm 7 has no 2008 record, so B's 2008 total without 4 is firm 5 alone
    assert out.loc[(4, 2009), "resistance"] == pytest.approx(
        ratio(150 / 200 - 1, (100 + 20) / 100 - 1), abs=TOL)
    assert out.loc[(4, 2009), "resistance"] == pytest.approx(-2.25, abs=TOL)
    # firm 5: exports fall to 0 in 2010: g = -1 is defined in the ratio form
    assert out.loc[(5, 2009), "recovery"] == pytest.approx(
        ratio(0 / 100 - 1, (180 + 25) / (150 + 20) - 1), abs=TOL)
    # the growth rates behind the measure
    assert out.loc[(1, 2009), "firm_change_resistance"] == pytest.approx(g1, abs=TOL)
    assert out.loc[(1, 2009), "industry_change_resistance"] == pytest.approx(gA, abs=TOL)
    assert out.loc[(1, 2009), "note"] == ""


def test_logdiff_form_by_hand():
    out = measure("logdiff")
    ln = math.log
    assert out.loc[(1, 2009), "resistance"] == pytest.approx(
        ln(80 / 100) - ln((45 + 35 + 10) / (50 + 50)), abs=TOL)
    assert out.loc[(1, 2009), "recovery"] == pytest.approx(
        ln(120 / 80) - ln((40 + 70 + 20) / (45 + 35 + 10)), abs=TOL)
    assert out.loc[(2, 2009), "resistance"] == pytest.approx(
        ln(45 / 50) - ln((80 + 35 + 10) / (100 + 50)), abs=TOL)
    assert out.loc[(4, 2009), "recovery"] == pytest.approx(
        ln(180 / 150) - ln((0 + 25) / (100 + 20)), abs=TOL)
    # industry D: firm 10 is flat, so firm 9's leave-one-out benchmark is 0 in logs
    assert out.loc[(9, 2009), "resistance"] == pytest.approx(ln(30 / 40), abs=TOL)


def test_survival_and_years_to_recover_by_hand():
    out = measure("ratio")
    # survived: 1[X_2010 > 0 | X_2009 > 0]
    assert out.loc[(1, 2009), "survived"] == 1.0
    assert out.loc[(5, 2009), "survived"] == 0.0
    # years from 2009 until exports regain the 2008 level
    assert out.loc[(1, 2009), "years_to_recover"] == 1  # 120 >= 100 in 2010
    assert out.loc[(2, 2009), "years_to_recover"] == 2  # 45, 40, then 60 >= 50 in 2011
    assert out.loc[(3, 2009), "years_to_recover"] == 1  # 70 >= 50 in 2010
    assert out.loc[(4, 2009), "years_to_recover"] == 2  # 150, 180, 210 >= 200
    assert out.loc[(5, 2009), "years_to_recover"] == 0  # never fell: 100 >= 100
    for f in (1, 2, 3, 4, 5):
        assert not out.loc[(f, 2009), "recovery_censored"]
    # firm 6 never regains 10 (8, 9) and its records end in 2010: censored after 1 year
    assert out.loc[(6, 2009), "years_to_recover"] == 1
    assert out.loc[(6, 2009), "recovery_censored"]
    assert "censored" in out.loc[(6, 2009), "note"]


def test_zero_exports():
    ratio_out, log_out = measure("ratio"), measure("logdiff")
    # zero in the year before the shock: growth undefined in both forms
    for out in (ratio_out, log_out):
        assert np.isnan(out.loc[(8, 2009), "resistance"])
        assert "resistance: zero exports in the year before the shock (growth undefined)" \
            in out.loc[(8, 2009), "note"]
        assert np.isnan(out.loc[(8, 2009), "years_to_recover"])
        assert "no level to regain" in out.loc[(8, 2009), "note"]
    # ...but its recovery (10 -> 20) is defined
    assert ratio_out.loc[(8, 2009), "recovery"] == pytest.approx(
        ratio(20 / 10 - 1, (120 + 40 + 70) / (80 + 45 + 35) - 1), abs=TOL)
    # zero the year after: defined as g = -1 in the ratio form, log of zero otherwise
    assert not np.isnan(ratio_out.loc[(5, 2009), "recovery"])
    assert np.isnan(log_out.loc[(5, 2009), "recovery"])
    assert "recovery: zero exports in the year after the shock (log of zero)" \
        in log_out.loc[(5, 2009), "note"]


def test_firm_alone_in_its_industry():
    for form in ("ratio", "logdiff"):
        out = measure(form)
        assert np.isnan(out.loc[(6, 2009), "resistance"])
        assert np.isnan(out.loc[(6, 2009), "recovery"])
        note = out.loc[(6, 2009), "note"]
        assert "resistance: no other firm of its industry exports in the year before the " \
               "shock (alone in its industry" in note
        assert "recovery: no other firm of its industry exports in the shock year" in note
        assert out.loc[(6, 2009), "survived"] == 1.0  # survival needs no benchmark


def test_zero_leave_one_out_growth_ratio_only():
    out = measure("ratio")
    assert np.isnan(out.loc[(9, 2009), "resistance"])
    assert "exactly zero" in out.loc[(9, 2009), "note"]


def test_missing_years():
    out = measure("ratio", shocks=[2009, 2011])
    # firm 7 has no 2008 record: resistance NaN, recovery defined
    assert np.isnan(out.loc[(7, 2009), "resistance"])
    assert "resistance: no record for the year before the shock" in out.loc[(7, 2009), "note"]
    assert out.loc[(7, 2009), "recovery"] == pytest.approx(
        ratio(25 / 20 - 1, (180 + 0) / (150 + 100) - 1), abs=TOL)
    assert np.isnan(out.loc[(7, 2009), "years_to_recover"])
    # the year after the last shock is beyond the records
    assert np.isnan(out.loc[(1, 2011), "recovery"])
    assert np.isnan(out.loc[(1, 2011), "survived"])
    note = out.loc[(1, 2011), "note"]
    assert "recovery: the records end before the year after the shock" in note
    assert "survived: the records end at the shock year" in note
    assert out.loc[(1, 2011), "resistance"] == pytest.approx(
        ratio(130 / 120 - 1, (60 + 40) / (40 + 70 + 20) - 1), abs=TOL)
    # firm 8's records end in 2010: nothing in the 2011 shock year
    assert np.isnan(out.loc[(8, 2011), "resistance"])
    assert "resistance: no record for the shock year" in out.loc[(8, 2011), "note"]
    # a firm with a record before the shock but none in it: the shock-year note
    df = records()
    df = df[~((df.firm == 2) & (df.yr == 2009))]
    gap = firm_resilience(df, firm="firm", industry="sector", year="yr", exports="value",
                          shock_years=2009).set_index("firm")
    assert np.isnan(gap.loc[2, "resistance"]) and np.isnan(gap.loc[2, "survived"])
    assert "resistance: no record for the shock year" in gap.loc[2, "note"]
    assert "survived: no record for the shock year" in gap.loc[2, "note"]


def test_winsorize_clips_within_each_shock_year():
    raw = measure("ratio", shocks=[2009, 2010])
    clipped = measure("ratio", shocks=[2009, 2010], winsorize=(0.1, 0.9))
    for year in (2009, 2010):
        for col in ("resistance", "recovery"):
            values = raw.xs(year, level="yr")[col]
            lo, hi = np.nanquantile(values, [0.1, 0.9])
            expected = values.clip(lo, hi)
            pd.testing.assert_series_equal(clipped.xs(year, level="yr")[col], expected)
    assert clipped["resistance"].max() < raw["resistance"].max()
    # one number q means (q, 1 - q)
    pd.testing.assert_frame_equal(measure("ratio", shocks=[2009, 2010], winsorize=0.1),
                                  clipped)


def test_annual_resilience_by_hand():
    out = annual_resilience(records(), firm="firm", industry="sector", year="yr",
                            exports="value").set_index(["firm", "yr"])
    assert len(out) == len(records())
    assert out.loc[(1, 2010), "resilience"] == pytest.approx(
        math.log(120 / 80) - math.log((40 + 70 + 20) / (45 + 35 + 10)), abs=TOL)
    assert out.loc[(2, 2011), "resilience"] == pytest.approx(
        math.log(60 / 40) - math.log((130 + 40) / (120 + 70 + 20)), abs=TOL)
    assert np.isnan(out.loc[(1, 2007), "resilience"])
    assert out.loc[(1, 2007), "note"] == "resilience: the records start after the previous year"
    assert np.isnan(out.loc[(7, 2009), "resilience"])
    assert out.loc[(7, 2009), "note"] == "resilience: no record for the previous year"
    ratio_out = annual_resilience(records(), firm="firm", industry="sector", year="yr",
                                  exports="value", form="ratio").set_index(["firm", "yr"])
    assert ratio_out.loc[(4, 2011), "resilience"] == pytest.approx(
        ratio(210 / 180 - 1, (50 + 40) / (0 + 25) - 1), abs=TOL)


def test_vectorised_matches_definition_on_random_panel():
    """Every firm-year of a random panel against the formula applied row by row."""
    rng = np.random.default_rng(5)
    rows = []
    for f in range(60):
        ind = f % 4
        for y in range(2000, 2006):
            if rng.random() < 0.15:
                continue  # missing years
            rows.append((f, ind, y, float(rng.choice([0.0, rng.lognormal(3, 1)],
                                                     p=[0.1, 0.9]))))
    df = pd.DataFrame(rows, columns=["f", "k", "y", "x"])
    got = annual_resilience(df, firm="f", industry="k", year="y", exports="x",
                            form="ratio").set_index(["f", "y"])["resilience"]
    table = df.set_index(["f", "y"])["x"]
    total = df.groupby(["k", "y"])["x"].sum()
    for (f, y), value in got.items():
        k = f % 4
        prev = table.get((f, y - 1))
        cur = table[(f, y)]
        others0 = total.get((k, y - 1), 0.0) - (prev or 0.0)
        others1 = total.get((k, y), 0.0) - cur
        if prev is None or prev == 0 or others0 <= 1e-12:
            assert np.isnan(value)
            continue
        gk = others1 / others0 - 1
        assert value == pytest.approx(ratio(cur / prev - 1, gk), rel=1e-9, abs=1e-9)


# ---- city level ----------------------------------------------------------------------

CITY = [  # region, industry, year, exports (R1's industry A split over two firms)
    ("R1", "A", 2008, 60), ("R1", "A", 2008, 40), ("R1", "A", 2009, 50), ("R1", "A", 2009, 30),
    ("R1", "A", 2010, 45), ("R1", "A", 2010, 45),
    ("R1", "B", 2008, 50), ("R1", "B", 2009, 50), ("R1", "B", 2010, 60),
    ("R2", "A", 2008, 100), ("R2", "A", 2009, 70), ("R2", "A", 2010, 100),
    ("R2", "B", 2008, 150), ("R2", "B", 2009, 120), ("R2", "B", 2010, 150),
    ("R3", "B", 2008, 20), ("R3", "B", 2009, 10),
]


def test_city_resilience_by_hand():
    df = pd.DataFrame(CITY, columns=["city", "ind", "year", "x"])
    out = city_resilience(df, region="city", industry="ind", year="year", exports="x",
                          shock_years=2009).set_index("city")
    # national industry totals: A 200 -> 150 -> 190; B 220 -> 180 -> 210 (R3 included)
    gA, gB = 150 / 200 - 1, 180 / 220 - 1
    gN = 330 / 420 - 1
    exp1 = gA * 100 + gB * 50
    dE1 = 130 - 150
    assert out.loc["R1", "resistance"] == pytest.approx((dE1 - exp1) / abs(exp1), abs=TOL)
    assert out.loc["R1", "resistance_simple"] == pytest.approx(
        (dE1 - gN * 150) / abs(gN * 150), abs=TOL)
    assert out.loc["R1", "sensitivity"] == pytest.approx((dE1 / 150) / gN, abs=TOL)
    rA, rB = 190 / 150 - 1, 210 / 180 - 1  # recovery phase (R3 has no 2010 record)
    rN = 400 / 330 - 1
    exp1r = rA * 80 + rB * 50
    assert out.loc["R1", "recovery"] == pytest.approx((150 - 130 - exp1r) / abs(exp1r),
                                                      abs=TOL)
    assert out.loc["R1", "recovery_simple"] == pytest.approx(
        (20 - rN * 130) / abs(rN * 130), abs=TOL)
    assert out.loc["R1", "sensitivity_recovery"] == pytest.approx((20 / 130) / rN, abs=TOL)
    exp2 = gA * 100 + gB * 150
    assert out.loc["R2", "resistance"] == pytest.approx((190 - 250 - exp2) / abs(exp2),
                                                        abs=TOL)
    assert out.loc["R1", "exports_before"] == 150 and out.loc["R1", "exports_shock"] == 130
    # R3 has no record in 2010: recovery undefined, resistance defined
    assert np.isnan(out.loc["R3", "recovery"]) and np.isnan(out.loc["R3", "exports_after"])
    assert "recovery: no record of the region for the year after the shock" \
        in out.loc["R3", "note"]
    assert out.loc["R3", "resistance"] == pytest.approx(
        (-10 - gB * 20) / abs(gB * 20), abs=TOL)
    assert out.loc["R1", "note"] == ""


# ---- bad input -------------------------------------------------------------------------


def call(df, **kw):
    args = dict(firm="firm", industry="sector", year="yr", exports="value", shock_years=2009)
    args.update(kw)
    return firm_resilience(df, **args)


@pytest.mark.parametrize("change, words", [
    (lambda d: d.drop(columns="value"), ["'value'", "exports=", "not in the data"]),
    (lambda d: d.assign(value=d.value.astype(object).where(d.index != 4, "n/a")),
     ["'value'", "numeric", "n/a"]),
    (lambda d: d.assign(value=d.value.where(d.index != 2, -5.0)), ["'value'", "negative"]),
    (lambda d: d.assign(value=d.value.where(d.index != 2, np.nan)), ["'value'", "missing"]),
    (lambda d: d.assign(value=d.value.where(d.index != 2, np.inf)), ["'value'", "infinite"]),
    (lambda d: pd.concat([d, d.iloc[[0]]]), ["duplicate", "'firm'", "'yr'"]),
    (lambda d: d.assign(yr=d.yr + 0.5), ["'yr'", "whole years"]),
    (lambda d: d.assign(sector=d.sector.where(d.index != 0, None)), ["'sector'", "missing"]),
    (lambda d: d.assign(sector=np.where((d.firm == 1) & (d.yr == 2011), "B", d.sector)),
     ["'sector'", "changes within a firm", "main industry"]),
])
def test_bad_input_is_a_data_error_naming_the_column(change, words):
    with pytest.raises(DataError) as info:
        call(change(records()))
    message = str(info.value)
    assert "firm_resilience" in message and "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_bad_arguments():
    df = records()
    for kw, word in ((dict(shock_years=2030), "2030"), (dict(form="pct"), "form='pct'"),
                     (dict(winsorize=(0.9, 0.1)), "winsorize"), (dict(shock_years=[]), "empty"),
                     (dict(shock_years=[2009, 2009]), "repeats")):
        with pytest.raises(DataError, match=word):
            call(df, **kw)
    with pytest.raises(DataError, match="DataFrame"):
        call(df.to_dict())
    with pytest.raises(DataError, match="no rows"):
        call(df.iloc[:0])
    with pytest.raises(DataError, match="negative"):
        city_resilience(df.assign(value=-df.value), region="firm", industry="sector",
                        year="yr", exports="value", shock_years=2009)
