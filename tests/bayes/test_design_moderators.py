"""Treatment x moderator-level terms in the design, on the first data and on new rows."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.design import build_design
from vagg_bayes.errors import DataError
from vagg_bayes.spec import Spec


def _frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.normal(size=n), "dose": rng.normal(size=n),
                         "school": np.arange(n) % 6,
                         "band": rng.choice(["low", "mid", "top"], n),
                         "size": rng.normal(size=n)})


SPEC = Spec(outcome="y", treatment="dose", controls=("size",), group="school",
            moderators=("band",))


def test_interactions_follow_the_regressors_and_the_main_effects_are_added():
    df = _frame()
    d = build_design(df, SPEC, moderators=["band"])
    assert d.terms == ("Intercept", "dose", "size", "band[mid]", "band[top]",
                       "dose:band[mid]", "dose:band[top]")
    assert d.moderation == (("band", ("low", "mid", "top")),)
    assert d.modifier_terms == ("band[mid]", "band[top]")
    assert d.interactions == (5, 6)
    np.testing.assert_array_equal(d.modifiers, d.X[:, [3, 4]])
    np.testing.assert_allclose(d.X[:, 6], df["dose"] * (df["band"] == "top"))
    # without moderators= the design is as before
    assert build_design(df, SPEC).terms == ("Intercept", "dose", "size")


def test_new_rows_are_encoded_as_the_first_data():
    df = _frame()
    ref = build_design(df, SPEC, moderators=["band"])
    new = df.iloc[:10].assign(band="mid")
    d = build_design(new, SPEC, reference=ref)
    assert d.terms == ref.terms and d.interactions == ref.interactions
    np.testing.assert_array_equal(d.modifiers, np.column_stack([np.ones(10), np.zeros(10)]))
    np.testing.assert_allclose(d.X[:, 5], new["dose"])
    with pytest.raises(DataError, match="Moderator .band. has level.s. huge"):
        build_design(df.iloc[:10].assign(band="huge"), SPEC, reference=ref)


def test_unit_means_of_the_interactions_with_repeated_units():
    df = _frame()
    df["unit"] = np.arange(len(df)) % 20
    df["wave"] = np.arange(len(df)) // 20
    df["band"] = np.array(["low", "mid", "top", "mid"])[df["unit"] % 4]
    spec = SPEC.with_(unit="unit", time="wave", group=None)
    d = build_design(df, spec, moderators=["band"])
    assert d.unit_effects == "within"
    assert "mean(dose:band[mid])" in d.terms
    k = d.terms.index("dose:band[top]")
    assert d.interactions[1] == k
