"""Diagnostics on fake posteriors (milliseconds): each failure is named, with a remedy."""

import re
import warnings

import numpy as np
import pytest

from vagg_bayes.bayes.diagnostics import ConvergenceWarning, check_draws, warn_if_failed


def test_good_chains_pass():
    rng = np.random.default_rng(0)
    d = check_draws({"a": rng.normal(size=(2, 1000)), "b": rng.normal(size=(2, 1000))}, 0)
    assert d.passed and d.max_r_hat < 1.01 and d.min_ess_bulk > 400


def test_disagreeing_chains_fail_with_remedy():
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(2, 1000))
    arr[1] += 3
    d = check_draws({"beta[x]": arr}, 5)
    assert not d.passed
    text = " ".join(d.problems)
    assert "5 divergent" in text and "target_accept" in text
    assert "r_hat of beta[x]" in text and "--chains 4" in text
    with pytest.warns(ConvergenceWarning, match="FAILS its diagnostics"):
        warn_if_failed(d)


def test_low_ess_named():
    rng = np.random.default_rng(1)
    walk = np.cumsum(rng.normal(size=(2, 1000)), axis=1)
    d = check_draws({"tau": walk}, 0)
    assert any(re.search(r"effective sample size \((bulk|tail)\) of tau", p) for p in d.problems)


def test_passing_result_is_silent():
    rng = np.random.default_rng(0)
    d = check_draws({"a": rng.normal(size=(2, 1000))}, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_failed(d)
