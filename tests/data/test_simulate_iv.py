"""The simulator's confounded treatment and instrument (simulate_panel(confounded_iv=...))."""

import json

import numpy as np
import pytest

from vagg_bayes.data import simulate_panel
from vagg_bayes.data.simulate import truth_to_json

SMALL = dict(n_firms=400, n_years=5, n_cities=40, n_provinces=8, seed=7)


def _cells(df):
    return df.groupby(["city_id", "year"]).first()


def test_off_by_default_and_other_values_unchanged():
    base, truth = simulate_panel(**SMALL)
    on, truth_on = simulate_panel(**SMALL, confounded_iv={})
    assert "confounded_iv" not in truth
    assert truth_on["confounded_iv"]["confounding"] == 1.0
    assert truth_on["confounded_iv"]["strength"] == 1.0
    # the factor changes va and resilience only; the structural truth is unchanged
    assert not np.allclose(base["va"], on["va"])
    same = [c for c in base.columns if c not in ("va", "resilience", "survival")
            and not c.startswith("m_")]
    for col in same:
        np.testing.assert_array_equal(base[col].to_numpy(), on[col].to_numpy(), err_msg=col)
    assert truth_on["resilience"]["direct"] == truth["resilience"]["direct"]
    assert [m["a"] for m in truth_on["resilience"]["mediators"].values()] == \
        [m["a"] for m in truth["resilience"]["mediators"].values()]
    json.loads(truth_to_json(truth_on))


def test_instrument_column_from_truth_and_strength_knob():
    """va's logit is linear in ln(tel1984) x net_{t-1} with slope 0.6 x strength (plus the
    centring term absorbed by year effects): checked on the logit, cells without noise."""
    for strength in (0.05, 4.0):
        df, truth = simulate_panel(**SMALL, confounded_iv={"strength": strength,
                                                           "confounding": 0.0})
        net = truth["confounded_iv"]["internet_share_lag"]
        cells = _cells(df).reset_index()
        z = np.log(cells["tel1984"]) * cells["year"].astype(str).map(net)
        logit = np.log(cells["va"] / (1 - cells["va"]))
        # within a year, the instrument's slope on va's logit is 0.6 x strength plus noise
        resid_z = z - z.groupby(cells["year"]).transform("mean")
        resid_l = logit - logit.groupby(cells["year"]).transform("mean")
        slope = float((resid_z * resid_l).sum() / (resid_z**2).sum())
        assert slope == pytest.approx(0.6 * strength, abs=0.1)


def test_confounder_raises_va_and_resilience_together():
    df, _ = simulate_panel(**SMALL, confounded_iv={"confounding": 1.5, "loading": 0.3})
    base, _ = simulate_panel(**SMALL)
    dv = (df["va"] - base["va"]).to_numpy()
    dr = (df["resilience"] - base["resilience"]).to_numpy()
    # the shifts of va (through the logit) and of resilience (directly, and through va)
    # come from one latent city-year factor: strongly positively correlated
    assert np.corrcoef(dv, dr)[0, 1] > 0.5


@pytest.mark.parametrize("value,match", [
    ({"strength": "strong"}, "finite number"),
    ({"power": 1.0}, "keys among"),
    ("yes", "must be a dict"),
])
def test_bad_confounded_iv(value, match):
    with pytest.raises(ValueError, match=match):
        simulate_panel(**SMALL, confounded_iv=value)
