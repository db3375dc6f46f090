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
