"""``estimate()``: fit a spec once (:class:`~vagg_bayes.analysis.Analysis`).

May import: vagg_bayes.analysis, vagg_bayes.bayes.sample, vagg_bayes.report.result,
vagg_bayes.spec.
"""

from __future__ import annotations

import pandas as pd

from vagg_bayes.analysis import Analysis, IdentificationWarning, check_graph
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.provenance import frame_hash
from vagg_bayes.report.result import EstimateResult
from vagg_bayes.spec import Spec

__all__ = ["IdentificationWarning", "check_graph", "estimate", "frame_hash"]


def estimate(
    data: pd.DataFrame,
    spec: Spec,
    *,
    settings: SamplerSettings | None = None,
    source: str = "data",
    parameterization: str = "auto",
) -> EstimateResult:
    """Estimate the effect of ``spec.treatment`` on ``spec.outcome``.

    ``Analysis(spec, settings, parameterization=...).fit(data, source=source)``; keep the
    :class:`~vagg_bayes.analysis.Analysis` instead when you will refit.

    Parameters
    ----------
    data : DataFrame
        The panel; not modified. Validated against ``spec`` first.
    spec : Spec
    settings : SamplerSettings, optional
        Draws, tune, chains, seed and sampler; default ``SamplerSettings()``.
    source : str, default "data"
        Name of the data in error messages (the file name).
    parameterization : {"auto", "centred", "noncentred"}, default "auto"
        Group effects of non-Gaussian models (Gaussian ones are integrated out).

    Returns
    -------
    EstimateResult
        ``summary("effects")`` has the ``total`` row. With ``spec.mediators`` the
        outcome and one equation per mediator are fitted: ``fits`` holds ``"outcome"``
        and each mediator; the effects are ``total, direct, indirect, indirect:<m> ...``
        (plus the ``:control`` / ``:treated`` parts for a Bernoulli outcome); ``tables``
        holds ``sensitivity``, ``classical`` and, with a group, ``group_mediation``;
        ``figures`` holds ``sensitivity.png``; and ``meta["classical_note"]`` says where
        the classical tests differ and why.

    Raises
    ------
    SpecError, DataError, GraphError
        Before any sampling, when the spec, the data or the DAG are unusable.

    Warns
    -----
    IdentificationWarning
        For each gap the DAG reveals (a required confounder missing from the controls).
    ConvergenceWarning
        When divergences, r_hat or ESS fail their thresholds.
    """
    analysis = Analysis(spec, settings, parameterization=parameterization)
    return analysis.fit(data, source=source)
