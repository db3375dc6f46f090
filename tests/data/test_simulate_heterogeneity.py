"""The simulator's heterogeneity switch: only the outcomes change, with a known truth."""

import numpy as np
import pytest

from vagg_bayes.data.simulate import simulate_panel

SMALL = {"n_firms": 300, "n_years": 3, "n_cities": 30, "n_provinces": 6, "seed": 4}


def test_default_is_unchanged_and_only_outcomes_move():
    base, truth = simulate_panel(**SMALL)
    same, same_truth = simulate_panel(**SMALL, heterogeneity={})
    assert base.equals(same) and truth == same_truth and "heterogeneity" not in truth
    het, het_truth = simulate_panel(**SMALL, heterogeneity={"ownership": {"state": 0.8}})
    changed = [c for c in base if not base[c].equals(het[c])]
    assert changed == ["resilience", "survival"]
    state = (base["ownership"] == "state").to_numpy()
    np.testing.assert_allclose(het["resilience"] - base["resilience"],
                               0.8 * state * base["va"], atol=1e-12)
    levels = het_truth["heterogeneity"]["ownership"]
    assert levels["state"]["resilience_direct"] == pytest.approx(0.35 + 0.8)
    assert levels["foreign"]["resilience_total"] == pytest.approx(truth["resilience"]["total"])
    # the sample-average truth includes the extra effect of the state-owned rows
    assert het_truth["resilience"]["total"] == pytest.approx(
        truth["resilience"]["total"] + 0.8 * state.mean())
    assert het_truth["survival"]["total"] > truth["survival"]["total"]


def test_region_heterogeneity_and_bad_values():
    _, truth = simulate_panel(**SMALL, heterogeneity={"region": {"east": -0.3}})
    assert truth["heterogeneity"]["region"]["east"]["resilience_direct"] == pytest.approx(0.05)
    for bad in ({"city": {"x": 1.0}}, {"ownership": {"public": 1.0}},
                {"ownership": {"state": float("nan")}}, ["ownership"]):
        with pytest.raises(ValueError, match="heterogeneity"):
            simulate_panel(**SMALL, heterogeneity=bad)
