"""Bayesian IV (vagg_bayes.bayes.iv): the collapsed likelihood against dense densities, the
designs, the spec and data checks, the weak-instrument warning, and recovery."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from vagg_bayes.analysis import Analysis
from vagg_bayes.bayes import iv
from vagg_bayes.bayes.iv import blocks, collapsed_loglik_np, collapsed_loglik_pt, iv_designs
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.data.panel import validate_panel
from vagg_bayes.errors import DataWarning, SpecError
from vagg_bayes.spec import Spec, parse_spec


def make_iv_frame(n_towns=30, n_periods=4, firms_per_cell=5, strength=0.8, seed=0):
    """Shops in towns over periods; town-period dose confounded by a latent factor, an
    instrument ``lever`` that moves the dose only; true effect of dose on sales 1.0."""
    rng = np.random.default_rng(seed)
    J, T = n_towns, n_periods
    lever = rng.normal(size=(J, T))
    latent = rng.normal(size=(J, T))
    dose = (strength * lever + latent + 0.3 * rng.normal(size=(J, T))
            + 0.5 * rng.normal(size=J)[:, None])
    town_effect = 0.4 * rng.normal(size=J)
    rows = []
    for j in range(J):
        for t in range(T):
            for _ in range(firms_per_cell):
                rows.append((j, t))
    town = np.array([r[0] for r in rows])
    period = np.array([r[1] for r in rows])
    n = len(rows)
    size = rng.normal(size=n)
    sales = (1.0 * dose[town, period] + 0.8 * latent[town, period] + 0.5 * size
             + town_effect[town] + 0.1 * period + rng.normal(size=n))
    return pd.DataFrame({"shop": np.arange(n), "town": town, "period": period,
                         "dose": dose[town, period], "lever": lever[town, period],
                         "size": size, "sales": sales})


SPEC = dict(outcome="sales", treatment="dose", controls=("size",), group="town", time="period")


# ------------------------------------------------------------------ the collapsed likelihood
@pytest.mark.parametrize("cells,grouped", [(True, True), (False, True), (False, False)])
def test_collapsed_loglik_equals_dense_normal(cells, grouped):
    rng = np.random.default_rng(1)
    group = np.repeat(np.arange(4), [5, 3, 6, 2])
    period = rng.integers(0, 3, len(group))
    d = rng.normal(size=(len(group), 3))
    c = np.array([1.0, -0.3, 0.5])
    s2, tc2, tu2 = 0.7, 0.4, 0.9
    same_g = group[:, None] == group[None]
    same_c = same_g & (period[:, None] == period[None])
    V = s2 * np.eye(len(group))
    if cells:
        V = V + tc2 * same_c
    if grouped:
        V = V + tu2 * same_g
    dense = stats.multivariate_normal(np.zeros(len(group)), V).logpdf(d @ c)
    b = blocks(d, group if grouped else None,
               group * 3 + period if cells else None)
    kw = dict(tc2=[tc2] if cells else None, tu2=[tu2] if grouped else None)
    assert collapsed_loglik_np(b, c[None], [s2], **kw)[0] == pytest.approx(dense, rel=1e-12)
    if grouped:
        per = collapsed_loglik_np(b, c[None], [s2], per_group=True, **kw)
        assert per.shape == (1, 4) and per.sum() == pytest.approx(dense, rel=1e-12)
    import pytensor.tensor as pt

    value = collapsed_loglik_pt(b, pt.as_tensor_variable(c), s2, tc2 if cells else None,
                                tu2 if grouped else None).eval()
    assert float(value) == pytest.approx(dense, rel=1e-12)


def test_model_density_is_the_bivariate_normal():
    """Without groups, p(v) p(y | v) of the model is the bivariate normal of the two
    structural errors (e1, e2) with covariance [[s1², k s1²], [k s1², sigma² + k² s1²]]."""
    frame = make_iv_frame(n_towns=6, n_periods=2, firms_per_cell=3)
    frame = frame.assign(dose=frame["dose"] + 0.1 * np.arange(len(frame)) % 7)  # row-level
    spec = Spec(outcome="sales", treatment="dose", controls=("size",), instrument=("lever",))
    ivd = iv_designs(validate_panel(frame, spec), spec)
    assert not ivd.cell_level and ivd.fs_group is None
    model = iv.build_iv_model(ivd, iv.default_iv_priors(ivd))
    point = model.initial_point()
    rng = np.random.default_rng(2)
    point = {name: value + 0.1 * rng.normal(size=np.shape(value))
             for name, value in point.items()}
    import pytensor

    outs = model.replace_rvs_by_values([model["theta_1"], model["theta_y"], model["loglik"]])
    fn = pytensor.function(model.value_vars, outs, on_unused_input="ignore")
    theta_1, theta_y, loglik = fn(**point)
    s1, sigma = np.exp(point["sigma_1_log__"]), np.exp(point["sigma_log__"])
    ti = ivd.outcome.treatment_index
    k = point["a"] - theta_y[ti] / ivd.outcome.x_sd[ti]
    e1 = ivd.first.y - ivd.first.Z @ theta_1
    e2 = ivd.outcome.y - ivd.outcome.Z @ theta_y
    cov = np.array([[s1**2, k * s1**2], [k * s1**2, sigma**2 + k**2 * s1**2]])
    dense = stats.multivariate_normal(np.zeros(2), cov).logpdf(np.column_stack([e1, e2])).sum()
    assert float(loglik) == pytest.approx(dense, rel=1e-10)


# ------------------------------------------------------------------ designs and checks
def test_designs_first_stage_on_cells_for_a_group_time_treatment():
    frame = make_iv_frame()
    spec = Spec(**SPEC, instrument=("lever",))
    ivd = iv_designs(validate_panel(frame, spec), spec)
    assert ivd.cell_level and len(ivd.fs_y) == 30 * 4
    assert ivd.outcome.group_time  # the treatment is a town-period measure
    assert ivd.first.terms[:3] == ("Intercept", "lever", "size")
    s = ivd.strength
    assert s.level == "town x period cells" and s.n == 120 and s.n_clusters == 30
    assert not s.weak and s.f > 16.38


def test_unit_effects_with_an_instrument_is_a_spec_error():
    frame = make_iv_frame()
    frame["shop"] = frame.groupby(["town", "period"]).cumcount() + 100 * frame["town"]
    spec = Spec(**SPEC, unit="shop", instrument=("lever",))
    with pytest.raises(SpecError, match=r"unit_effects = \"none\""):
        iv_designs(validate_panel(frame, spec), spec)
    ok = Spec(**SPEC, unit="shop", unit_effects="none", instrument=("lever",))
    assert iv_designs(validate_panel(frame, ok), ok).outcome.unit_effects == "none"


def test_spec_parses_instrument_string_or_list():
    doc = {"variables": {"outcome": "sales", "treatment": "dose", "instrument": "lever"}}
    assert parse_spec(doc).instrument == ("lever",)
    doc["variables"]["instrument"] = ["lever", "lever2"]
    spec = parse_spec(doc)
    assert spec.instrument == ("lever", "lever2") and spec.columns[-2:] == ["lever", "lever2"]
    assert spec.to_dict()["instrument"] == ["lever", "lever2"]


@pytest.mark.parametrize("changes,match", [
    ({"family": "bernoulli"}, "Gaussian-only"),
    ({"mediators": ("m",)}, r"\[variables\].mediators .*cannot be combined"),
    ({"moderators": ("kind",)}, r"\[variables\].moderators .*cannot be combined"),
    ({"varying_slope": True}, r"\[model\].varying_slope .*cannot be combined"),
    ({"controls": ("lever",)}, "more than one role"),
])
def test_spec_refuses_what_iv_cannot_do(changes, match):
    with pytest.raises(SpecError, match=match):
        Spec(**{**SPEC, **changes}, instrument=("lever",))


def test_non_numeric_instrument_is_a_data_error():
    frame = make_iv_frame().assign(lever="high")
    from vagg_bayes.errors import DataError

    with pytest.raises(DataError, match=r"'lever' named in \[variables\].instrument"):
        validate_panel(frame, Spec(**SPEC, instrument=("lever",)))


class _Stop(Exception):
    pass


@pytest.mark.parametrize("strength,weak", [(0.02, True), (1.0, False)])
def test_weak_instrument_warns_before_sampling(monkeypatch, strength, weak):
    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(iv, "fit_iv", stop)
    frame = make_iv_frame(strength=strength, seed=4)
    analysis = Analysis(Spec(**SPEC, instrument=("lever",)), SamplerSettings(draws=10, tune=10))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(_Stop):
            analysis.fit(frame)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert bool(messages) == weak
    if weak:
        assert "WEAK INSTRUMENT" in messages[0]
        assert "lever" in messages[0] and "below 10" in messages[0]


# ------------------------------------------------------------------ sampling
@pytest.mark.slow
def test_iv_fit_writes_effect_rho_and_first_stage(tmp_path):
    frame = make_iv_frame(seed=5)
    settings = SamplerSettings(draws=1000, tune=500, chains=2, random_seed=2)
    analysis = Analysis(Spec(**SPEC, instrument=("lever",)), settings)
    result = analysis.fit(frame)
    effects = result.summary("effects").set_index("effect")
    assert list(effects.index) == ["total"]
    low, high = effects.loc["total", ["hdi_low", "hdi_high"]]
    assert low < 1.0 < high and effects.loc["total", "r_hat"] < 1.01
    coefs = result.summary("coefficients").set_index("term")
    assert {"dose", "rho", "control_function", "sd(town)", "sd(town:period)",
            "first_stage~lever", "first_stage~sigma"} <= set(coefs.index)
    # the latent factor raises both dose and sales: the errors correlate positively
    assert coefs.loc["rho", "hdi_low"] > 0
    result.write(tmp_path / "out")
    diag = json.loads((tmp_path / "out" / "diagnostics.json").read_text())
    assert diag["first_stage"]["instruments"] == ["lever"]
    assert diag["first_stage"]["n_instruments"] == 1 and diag["first_stage"]["weak"] is False
    assert "cluster-robust" in diag["first_stage"]["f_kind"]
    assert "First stage (lever): F" in str(result)
    # a refit with the first seed on the first data reproduces the draws
    again = analysis.refit(frame)
    np.testing.assert_array_equal(again.effect_draws["total"], result.effect_draws["total"])
