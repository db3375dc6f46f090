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
                    settings=SamplerSettings(draws=1000, tune=500, random_seed=1))
