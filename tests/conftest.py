"""Shared fixtures: a small panel with neutral column names, written to disk."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")


def small_panel(n_units=300, n_waves=4, n_schools=15, seed=0, binary=False):
    """Pupils (unit) in schools (group) over waves; school-level dose; known slope 0.5."""
    rng = np.random.default_rng(seed)
    unit = np.repeat(np.arange(n_units), n_waves)
    wave = np.tile(np.arange(n_waves), n_units)
    school_of = rng.integers(0, n_schools, n_units)
    school = school_of[unit]
    dose_sw = rng.gamma(2.0, 0.5, size=(n_schools, n_waves))
    dose = dose_sw[school, wave]
    kind = rng.choice(["alpha", "beta"], n_units)[unit]
    size = rng.normal(size=unit.size)
    u = 0.3 * rng.normal(size=n_schools)
    eta = 0.2 + 0.5 * dose + 0.3 * size - 0.2 * (kind == "beta") + u[school] + 0.1 * wave
    if binary:
        y = (rng.random(unit.size) < 1 / (1 + np.exp(-eta))).astype(int)
    else:
        y = eta + 0.8 * rng.normal(size=unit.size)
    return pd.DataFrame({"pupil": unit, "wave": wave, "school": school, "dose": dose,
                         "kind": kind, "size": size, "score": y})


SPEC_TEXT = """
[data]
unit = "pupil"
group = "school"
time = "wave"

[variables]
outcome = "score"
treatment = "dose"
controls = ["size", "kind"]

[model]
family = "gaussian"
"""


@pytest.fixture
def panel_files(tmp_path):
    """(spec path, csv path) of the small panel."""
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC_TEXT)
    data = tmp_path / "panel.csv"
    small_panel().to_csv(data, index=False)
    return spec, data


@pytest.fixture
def panel_factory():
    return small_panel


@pytest.fixture(scope="session")
def fitted_small():
    """A real (small) estimate of the small panel, shared by the report tests."""
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.pipeline import estimate
    from vagg_bayes.spec import Spec

    spec = Spec(outcome="score", treatment="dose", controls=("size", "kind"), unit="pupil",
                group="school", time="wave")
    return estimate(small_panel(), spec,
                    settings=SamplerSettings(draws=1500, tune=1000, random_seed=1))


def firm_panel(n_towns=60, n_plants=20, n_periods=6, *, seed=0, quality_sd=1.0,
               cell_sd=0.35, direct=0.2, a=0.4, b=0.3, unbalanced=0.0):
    """Plants (firms) in towns (cities) over periods; a town-period treatment ``dig``.

    A persistent, unobserved plant quality raises both the mediator ``cost_eff`` and the
    outcome ``exp_res`` (it confounds the mediator-outcome path); a town quality raises
    the treatment, the mediator and the outcome; town-period shocks (SD ``cell_sd``) hit
    the mediator and the outcome. True effects: direct ``direct``, indirect ``a * b``,
    total their sum. ``unbalanced`` is the share of plant-periods dropped at random.
    """
    rng = np.random.default_rng(seed)
    J, F, T = n_towns, n_plants, n_periods
    town_q = rng.normal(size=J)
    town_fx = 0.3 * rng.normal(size=(2, J))  # town effects of the mediator and outcome
    dig = 0.8 * town_q[:, None] + 0.1 * np.arange(T)[None] + rng.normal(size=(J, T))
    shock_m = cell_sd * rng.normal(size=(J, T))
    shock_y = cell_sd * rng.normal(size=(J, T))
    period_fx = 0.2 * rng.normal(size=T)
    plant = np.repeat(np.arange(J * F), T)
    town = plant // F
    t = np.tile(np.arange(T), J * F)
    quality = quality_sd * rng.normal(size=J * F)[plant]
    size = rng.normal(size=J * F)[plant] + 0.1 * rng.normal(size=plant.size)
    d = dig[town, t]
    m = (a * d + 0.8 * quality + 0.5 * town_q[town] + town_fx[0, town] + 0.2 * size
         + shock_m[town, t]
         + rng.normal(size=plant.size))
    y = (direct * d + b * m + 0.8 * quality + 0.5 * town_q[town] + town_fx[1, town]
         + 0.1 * size
         + period_fx[t] + shock_y[town, t] + rng.normal(size=plant.size))
    frame = pd.DataFrame({"plant": plant, "town": town, "period": 2000 + t, "dig": d,
                          "cost_eff": m, "scale_ln": size, "exp_res": y})
    if unbalanced:
        frame = frame[rng.random(len(frame)) >= unbalanced].reset_index(drop=True)
    truth = {"direct": direct, "indirect": a * b, "total": direct + a * b, "a": a, "b": b}
    return frame, truth


@pytest.fixture(scope="session")
def firm_panel_factory():
    """:func:`firm_panel`: (data, truth) of a plant-town-period panel."""
    return firm_panel
