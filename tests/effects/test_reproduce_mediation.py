"""Published mediation analyses reproduced (Imai, Keele, Tingley & Yamamoto 2010; Tingley
et al. 2014): JOBS II with a continuous and a binary outcome, and the framing experiment.

The published binary-outcome models are probit; ours is logit. Effects on the probability
scale still agree within 0.02 (the published numbers themselves carry Monte Carlo error of
order 0.002-0.005). These data have no groups: the spec has no [data].group.
"""

import warnings

import pytest

from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.datasets import (
    FRAMING_COVARIATES,
    JOBS_COVARIATES,
    PUBLISHED,
    load_framing,
    load_jobs,
)
from vagg_bayes.spec import Spec

TOLERANCE = 0.02
CASES = {
    "jobs_depress2": (load_jobs, "depress2", "job_seek", JOBS_COVARIATES, "gaussian"),
    "jobs_work1": (load_jobs, "work1", "job_seek", JOBS_COVARIATES, "bernoulli"),
    "framing": (load_framing, "cong_mesg", "emo", FRAMING_COVARIATES, "bernoulli"),
}
# our effect row -> the name of the published estimate
NAMES = {
    "gaussian": {"indirect": "acme", "direct": "ade", "total": "total"},
    "bernoulli": {"indirect": "acme_average", "direct": "ade_average", "total": "total",
                  "indirect:control": "acme_control", "indirect:treated": "acme_treated",
                  "direct:control": "ade_control", "direct:treated": "ade_treated"},
}


@pytest.mark.slow
@pytest.mark.parametrize("key", list(CASES))
def test_reproduces_published_acme_and_ade(key):
    from vagg_bayes.pipeline import estimate

    load, outcome, mediator, covariates, family = CASES[key]
    spec = Spec(outcome=outcome, treatment="treat", mediators=(mediator,),
                controls=covariates, family=family)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = estimate(load(), spec, settings=SamplerSettings(draws=1000, tune=1000,
                                                                 random_seed=2010))
    assert result.diagnostics.passed, result.diagnostics.problems
    assert "group_mediation" not in result.tables
    effects = result.summary("effects").set_index("effect")
    published = PUBLISHED[key]["estimates"]
    for ours, theirs in NAMES[family].items():
        assert effects.loc[ours, "mean"] == pytest.approx(published[theirs][0], abs=TOLERANCE), (
            ours, effects.loc[ours, "mean"], published[theirs][0])
    assert effects.loc[f"indirect:{mediator}", "mean"] == effects.loc["indirect", "mean"]
    # the published 95% CI of the ACME and our 94% HDI overlap substantially
    low, high = PUBLISHED[key]["ci95"][NAMES[family]["indirect"]]
    assert effects.loc["indirect", "hdi_low"] < high and low < effects.loc["indirect", "hdi_high"]
