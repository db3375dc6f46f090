"""Moderator columns are checked before any sampling: present, categorical, two levels."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.data.panel import validate_panel
from vagg_bayes.errors import DataError
from vagg_bayes.spec import Spec


def _frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.normal(size=n), "t": rng.normal(size=n),
                         "city": np.arange(n) % 5, "own": rng.choice(["a", "b", "c"], n),
                         "code": rng.integers(0, 3, n)})


def test_a_categorical_moderator_is_kept():
    out = validate_panel(_frame(), Spec(outcome="y", treatment="t", moderators=("own",)))
    assert list(out.columns) == ["y", "t", "own"]


def test_missing_moderator_column_names_it():
    spec = Spec(outcome="y", treatment="t", moderators=("ownr",))
    with pytest.raises(DataError, match=r"'ownr' named in \[variables\].moderators is not in "
                                        r"panel.csv.*Did you mean 'own'"):
        validate_panel(_frame(), spec, source="panel.csv")


def test_numeric_moderator_is_an_error_with_the_fix():
    spec = Spec(outcome="y", treatment="t", moderators=("code",))
    with pytest.raises(DataError, match=r"Moderator 'code'.*must be categorical.*as text"):
        validate_panel(_frame(), spec)


def test_single_level_moderator_is_an_error():
    spec = Spec(outcome="y", treatment="t", moderators=("own",))
    with pytest.raises(DataError, match=r"Moderator 'own'.*single level \('a'\).*Remove it"):
        validate_panel(_frame().assign(own="a"), spec, source="panel.csv")
    # new rows (predictions) may hold one level
    validate_panel(_frame().assign(own="a"), spec, new_rows=True)


def test_missing_values_in_a_moderator_are_reported():
    frame = _frame()
    frame.loc[3, "own"] = None
    with pytest.raises(DataError, match=r"'own' \(\[variables\].moderators\).*missing"):
        validate_panel(frame, Spec(outcome="y", treatment="t", moderators=("own",)))
