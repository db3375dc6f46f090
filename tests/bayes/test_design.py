"""Design matrices: data names, indicators, time effects, exact standardisation."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.design import build_design
from vagg_bayes.errors import DataError
from vagg_bayes.spec import Spec


def test_terms_named_by_data_columns(frame, spec_slope):
    d = build_design(frame, spec_slope)
    assert d.terms == ("Intercept", "dose", "kind[q]", "kind[r]", "wave[1]")
    assert d.varying == (0, 1) and d.treatment_index == 1
    np.testing.assert_allclose(d.X @ d.transform, d.Z)
    np.testing.assert_allclose(d.Z[:, 1:].mean(0), 0, atol=1e-12)
    assert d.n_groups == frame.school.nunique()


def test_caller_frame_untouched(frame, spec_slope):
    before = frame.copy()
    build_design(frame, spec_slope)
    pd.testing.assert_frame_equal(frame, before)


def test_group_level_treatment_allowed_with_varying_intercept():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(10), 20)
    df = pd.DataFrame({"y": rng.normal(size=200), "x": rng.normal(size=10)[g], "g": g})
    d = build_design(df, Spec(outcome="y", treatment="x", group="g"))
    assert d.varying == (0,)


def test_collinear_regressors_named():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    df = pd.DataFrame({"y": rng.normal(size=50), "x": x, "x2": 2 * x})
    with pytest.raises(DataError, match="collinear"):
        build_design(df, Spec(outcome="y", treatment="x", controls=("x2",)))


def test_collinear_unit_means_kept_once():
    """Exposure x year indicators in a balanced panel: every unit mean is exposure / T, so
    one unit mean is kept (the means' span is unchanged) instead of a collinearity error."""
    rng = np.random.default_rng(0)
    unit = np.repeat(np.arange(30), 4)
    t = np.tile(np.arange(4), 30)
    exposure = rng.uniform(0.5, 1.5, 30)[unit]
    df = pd.DataFrame({"y": rng.normal(size=120), "u": unit, "t": t,
                       "e1": exposure * (t == 1), "e2": exposure * (t == 2),
                       "e3": exposure * (t == 3)})
    spec = Spec(outcome="y", treatment="e1", controls=("e2", "e3"), unit="u", time="t")
    d = build_design(df, spec)
    assert [term for term in d.terms if term.startswith("mean(")] == ["mean(e1)"]
    np.testing.assert_allclose(d.X[:, d.terms.index("mean(e1)")], exposure / 4)
    assert d.mundlak == ((1, d.terms.index("mean(e1)")),)


# ----------------------------------------------------------------- group means (Mundlak)

def _firms_in_towns(seed=0, towns=12, firms=6):
    rng = np.random.default_rng(seed)
    town = np.repeat(np.arange(towns), firms)
    return pd.DataFrame({"score": rng.normal(size=towns * firms),
                         "dose": rng.normal(size=towns * firms),
                         "town_tax": rng.normal(size=towns)[town],
                         "town": [f"t{j:02d}" for j in town]})


def test_group_means_make_the_coefficient_the_within_group_slope():
    df = _firms_in_towns()
    spec = Spec(outcome="score", treatment="dose", controls=("town_tax",), group="town",
                group_means=True)
    d = build_design(df, spec)
    assert d.terms == ("Intercept", "dose", "town_tax", "group_mean(dose)")
    assert d.group_mundlak == ((1, 3),)
    assert d.group_means_skipped == (("town_tax",
                                      "constant within groups: its group mean is itself"),)
    np.testing.assert_allclose(d.X[:, 3], df.groupby("town").dose.transform("mean"))
    # least squares on the design: the coefficient of dose is the within-town slope
    beta = np.linalg.lstsq(d.X, d.y, rcond=None)[0]
    dx = df.dose - df.groupby("town").dose.transform("mean")
    dy = df.score - df.groupby("town").score.transform("mean")
    assert beta[1] == pytest.approx(float(dx @ dy / (dx @ dx)), rel=1e-10)
    assert build_design(df, spec.with_(group_means=False)).group_mundlak == ()


def test_group_level_treatment_gets_no_group_mean():
    df = _firms_in_towns()
    spec = Spec(outcome="score", treatment="town_tax", controls=("dose",), group="town",
                group_means=True)
    d = build_design(df, spec)
    assert d.terms == ("Intercept", "town_tax", "dose", "group_mean(dose)")
    assert d.group_means_skipped[0][0] == "town_tax"


def test_group_mean_in_the_span_of_group_level_columns_is_skipped():
    df = _firms_in_towns()
    df["town_dose"] = df.groupby("town").dose.transform("mean") * 2 + 1
    spec = Spec(outcome="score", treatment="dose", controls=("town_dose",), group="town",
                group_means=True)
    d = build_design(df, spec)  # no collinearity error
    assert "group_mean(dose)" not in d.terms
    assert ("dose", "its group mean is a combination of the group-level columns already in "
                    "the equation") in d.group_means_skipped


def test_group_means_never_saturate_the_groups():
    rng = np.random.default_rng(1)
    df = _firms_in_towns(towns=4, firms=10)
    for c in ("c1", "c2", "c3"):
        df[c] = rng.normal(size=len(df))
    spec = Spec(outcome="score", treatment="dose", controls=("c1", "c2", "c3"), group="town",
                group_means=True)
    d = build_design(df, spec)
    # intercept + 2 group means = 3 group-level columns < 4 towns
    assert len(d.group_mundlak) == 2
    assert any("as many as the 4 groups" in why for _, why in d.group_means_skipped)


def test_group_means_with_repeated_units():
    """Firms nested in towns over years: a time-varying regressor's slope is already
    within-firm (no group mean); a time-invariant firm trait gets its town mean; with
    firm fixed effects no group means at all."""
    rng = np.random.default_rng(2)
    firm = np.repeat(np.arange(40), 3)
    town = firm // 5
    df = pd.DataFrame({"score": rng.normal(size=120), "dose": rng.normal(size=120),
                       "age": rng.normal(size=40)[firm], "plant": firm,
                       "town": town, "yr": np.tile([2001, 2002, 2003], 40)})
    spec = Spec(outcome="score", treatment="dose", controls=("age",), unit="plant",
                group="town", time="yr", group_means=True)
    d = build_design(df, spec)
    assert "mean(dose)" in d.terms and "group_mean(age)" in d.terms
    assert "group_mean(dose)" not in d.terms and "group_mean(mean(dose))" not in d.terms
    assert [t for t, why in d.group_means_skipped if "within units" in why] == \
        ["dose", "yr[2002]", "yr[2003]"]
    assert d.group_mundlak == ((2, d.terms.index("group_mean(age)")),)
    fixed = build_design(df, spec.with_(unit_effects="fixed"))
    assert fixed.group_mundlak == ()
    assert all("fixed effects" in why for _, why in fixed.group_means_skipped)


def test_group_means_of_new_rows_come_from_those_rows():
    df = _firms_in_towns()
    spec = Spec(outcome="score", treatment="dose", controls=("town_tax",), group="town",
                group_means=True)
    first = build_design(df, spec)
    new = pd.DataFrame({"score": [0.0, 0.0, 0.0], "dose": [1.0, 3.0, 4.0],
                        "town_tax": [0.5, 0.5, -1.0], "town": ["t00", "t00", "zz"]})
    d = build_design(new, spec, reference=first)
    assert d.terms == first.terms
    np.testing.assert_allclose(d.X[:, 3], [2.0, 2.0, 4.0])
    np.testing.assert_allclose(d.Z, (d.X - first.x_mean) / first.x_sd)
