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


def test_vectorised_statistics_equal_the_per_scalar_ones():
    """One ArviZ call per statistic gives each scalar's own r_hat and ESS, names kept."""
    import arviz as az

    from vagg_bayes.bayes.diagnostics import _flatten, _rhat_ess, diagnose

    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=(4, 300, 3)), axis=1)
    posterior = {"beta": rng.normal(size=(4, 300, 3)) + 0.3 * walk,  # ESS differs by column
                 "sigma": np.exp(rng.normal(size=(4, 300))),
                 "fixed": np.ones((4, 300))}  # constant: skipped
    idata = az.from_dict(posterior=posterior, dims={"beta": ["term"]},
                         coords={"term": ["a", "b", "c"]})
    draws = _flatten(idata.posterior)
    assert list(draws) == ["beta[a]", "beta[b]", "beta[c]", "sigma", "fixed"]
    r_hat, bulk, tail = _rhat_ess(draws)
    assert list(r_hat) == list(bulk) == list(tail) == ["beta[a]", "beta[b]", "beta[c]", "sigma"]
    for name in r_hat:
        assert r_hat[name] == float(az.rhat(draws[name]))
        assert bulk[name] == float(az.ess(draws[name], method="bulk"))
        assert tail[name] == float(az.ess(draws[name], method="tail"))
    assert len(set(bulk.values())) == 4  # not one number broadcast to every name
    d = diagnose(idata, ["beta", "sigma", "fixed"])
    worst = min(bulk, key=bulk.get)
    assert d.min_ess_bulk == bulk[worst] and d.worst["ess_bulk"] == worst
    assert d.max_r_hat == max(r_hat.values())
    assert d.worst["r_hat"] == max(r_hat, key=r_hat.get)


def test_arrays_of_different_shapes_and_constants():
    """Arrays of other lengths are diagnosed too; constant ones never."""
    rng = np.random.default_rng(4)
    d = check_draws({"long": rng.normal(size=(2, 900)), "short": rng.normal(size=(2, 300)),
                     "const": np.zeros((2, 900))}, 0)
    assert d.worst["ess_bulk"] == "short" and "const" not in d.worst.values()
    empty = check_draws({"const": np.zeros((2, 10))}, 0)
    assert empty.passed and np.isnan(empty.max_r_hat) and empty.worst["r_hat"] == ""


# --------------------------------------------------------------------------- numeric faults


def test_non_finite_draws_are_named_and_kept_out_of_r_hat():
    rng = np.random.default_rng(2)
    bad = rng.normal(size=(2, 1000))
    bad[0, 10] = np.nan
    bad[1, 20] = np.inf
    d = check_draws({"a": rng.normal(size=(2, 1000)), "beta[x]": bad}, 0)
    assert not d.passed
    text = " ".join(d.problems)
    assert "2 of 2000 draws of beta[x] are NaN or infinite" in text and "rescale" in text
    assert np.isfinite(d.max_r_hat)  # the broken array does not turn r_hat into NaN
    assert "r_hat of" not in text


def test_single_chain_says_r_hat_needs_chains():
    rng = np.random.default_rng(3)
    d = check_draws({"a": rng.normal(size=(1, 1000))}, 0)
    assert any("single chain" in p and "--chains" in p for p in d.problems)


def test_sd_piling_at_zero_is_a_note_not_a_failure():
    from vagg_bayes.bayes.diagnostics import boundary_notes

    rng = np.random.default_rng(4)
    near_zero = np.abs(rng.normal(0, 0.02, size=(2, 1000)))  # half-normal: mode at 0
    away = rng.normal(1.0, 0.1, size=(2, 1000))
    wide = rng.lognormal(0.0, 0.5, size=(2, 1000))
    notes = boundary_notes({"sd(city)": near_zero, "sd(city:va)": away, "sd(firm)": wide,
                            "beta[va]": near_zero})
    assert len(notes) == 1
    assert notes[0].startswith("The posterior of sd(city) piles up at its lower bound 0")
    assert "upper bound" in notes[0] and "varying_slope" in notes[0]


def test_correlation_piling_at_one_is_noted():
    from vagg_bayes.bayes.diagnostics import boundary_notes

    rng = np.random.default_rng(5)
    corr = 1 - np.abs(rng.normal(0, 0.02, size=(2, 1000)))
    notes = boundary_notes({"corr(city)": corr, "corr(other)": rng.uniform(-0.5, 0.5, (2, 500))})
    assert len(notes) == 1 and "corr(city) piles up at +1" in notes[0]


def test_notes_do_not_fail_and_are_combined():
    from dataclasses import replace

    from vagg_bayes.bayes.diagnostics import combine_diagnostics

    rng = np.random.default_rng(6)
    d = check_draws({"a": rng.normal(size=(2, 1000))}, 0)
    noted = replace(d, notes=("something to know",))
    combined = combine_diagnostics([d, noted])
    assert combined.passed and combined.notes == ("something to know",)
    assert combined.to_dict()["notes"] == ["something to know"]
