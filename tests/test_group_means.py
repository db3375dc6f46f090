"""Group (city) means, Mundlak at the group level: a city-level confounder and its contrast.

Firms in towns (renamed columns). An unobserved, persistent town quality raises both the
regressor and the outcome; group random intercepts alone leave the slope biased, the
town means of ``group_means = true`` give the within-town slope, and the group-level
``difference`` row of ``within_between`` says so.
"""

import numpy as np
import pandas as pd
import pytest

from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.pipeline import estimate
from vagg_bayes.spec import Spec

SETTINGS = SamplerSettings(draws=600, tune=500, chains=2, random_seed=4)
SLOPE = 0.3


def _cross_section(seed=0, towns=250, firms=4):
    rng = np.random.default_rng(seed)
    town = np.repeat(np.arange(towns), firms)
    quality = rng.normal(size=towns)[town]
    dose = 0.9 * quality + rng.normal(size=town.size)
    other = rng.normal(scale=0.8, size=towns)[town]  # a town effect unrelated to dose
    score = SLOPE * dose + 0.8 * quality + other + rng.normal(size=town.size)
    return pd.DataFrame({"score": score, "dose": dose, "town": [f"T{j}" for j in town]})


def _row(wb, term, slope, level):
    return wb[(wb.term == term) & (wb.slope == slope) & (wb.level == level)].iloc[0]


@pytest.mark.slow
def test_group_means_remove_a_town_confounder():
    data = _cross_section()
    spec = Spec(outcome="score", treatment="dose", group="town")
    naive = estimate(data, spec, settings=SETTINGS).summary("effects").set_index("effect")
    assert naive.loc["total", "hdi_low"] > SLOPE  # the town quality leaks into the slope

    result = estimate(data, spec.with_(group_means=True), settings=SETTINGS)
    total = result.summary("effects").set_index("effect").loc["total"]
    assert total["hdi_low"] <= SLOPE <= total["hdi_high"], total.to_dict()
    wb = result.summary("within_between")
    assert list(wb.columns[:3]) == ["equation", "term", "slope"] and wb.columns[-1] == "level"
    assert set(wb.level) == {"group"}
    diff = _row(wb, "dose", "difference", "group")
    assert diff["hdi_low"] > 0  # between-town slope above the within-town one
    within = _row(wb, "dose", "within", "group")
    assert within["mean"] == pytest.approx(total["mean"], abs=1e-12)


@pytest.mark.slow
def test_group_contrast_covers_zero_without_a_town_confounder(tmp_path):
    """Plants over years in towns, no town confounder: the time-varying treatment's slope
    is within-plant (unit rows only); the plant-level trait gets its town mean, and the
    group-level difference covers zero."""
    rng = np.random.default_rng(1)
    plant = np.repeat(np.arange(300), 4)
    town = plant // 10
    age = rng.normal(size=300)[plant]
    dose = rng.normal(size=plant.size)
    score = (SLOPE * dose + 0.5 * age + rng.normal(scale=0.6, size=30)[town]
             + rng.normal(size=300)[plant] + rng.normal(size=plant.size))
    data = pd.DataFrame({"score": score, "dose": dose, "age": age, "plant": plant,
                         "town": town, "yr": np.tile([1, 2, 3, 4], 300)})
    spec = Spec(outcome="score", treatment="dose", controls=("age",), unit="plant",
                group="town", time="yr", group_means=True)
    result = estimate(data, spec, settings=SamplerSettings(draws=1000, tune=700, chains=2,
                                                           random_seed=4))
    wb = result.summary("within_between")
    assert set(wb[wb.level == "group"].term) == {"age"}
    assert set(wb[wb.level == "unit"].term) >= {"dose"}
    diff = _row(wb, "age", "difference", "group")
    assert diff["hdi_low"] < 0 < diff["hdi_high"], diff.to_dict()
    result.write(tmp_path / "out")
    written = pd.read_csv(tmp_path / "out" / "within_between.csv")
    assert written.columns[-1] == "level" and set(written.level) == {"unit", "group"}
