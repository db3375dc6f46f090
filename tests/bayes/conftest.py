"""Small hierarchical data with neutral names, shared by the bayes tests."""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.spec import Spec


def make_frame(n=600, J=12, seed=3, slope_sd=0.4, binary=False):
    rng = np.random.default_rng(seed)
    school = rng.integers(0, J, n)
    x = rng.normal(size=n) + 0.5 * rng.normal(size=J)[school]
    kind = rng.choice(["p", "q", "r"], n)
    u0 = 0.6 * rng.normal(size=J)
    u1 = slope_sd * rng.normal(size=J)
    eta = 0.5 + (0.8 + u1[school]) * x + u0[school] + 0.3 * (kind == "q")
    if binary:
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    else:
        y = eta + rng.normal(size=n)
    wave = rng.integers(0, 2, n)
    climate = rng.normal(size=J)  # a school-level covariate, constant within schools
    return pd.DataFrame({"score": y, "dose": x, "kind": kind, "school": school,
                         "wave": wave, "climate": climate[school]})


@pytest.fixture
def frame():
    return make_frame()


@pytest.fixture
def spec_slope():
    return Spec(outcome="score", treatment="dose", controls=("kind",), group="school",
                time="wave", varying_slope=True)


@pytest.fixture
def frame_factory():
    return make_frame
