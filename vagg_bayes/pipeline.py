"""The pipeline of one analysis: validated panel -> design -> posterior -> effects -> result.

May import: every vagg_bayes subpackage (this is the one place that joins them).
"""

from __future__ import annotations

import hashlib
import time

import warnings

import pandas as pd

from vagg_bayes.bayes.design import build_design
from vagg_bayes.bayes.diagnostics import warn_if_failed
from vagg_bayes.bayes.fit import fit_equation
from vagg_bayes.bayes.sample import SamplerSettings, check_sampler_available
from vagg_bayes.data.panel import validate_panel
from vagg_bayes.effects.mediation import fit_mediation
from vagg_bayes.effects.total import total_effect
from vagg_bayes.report.result import OUTCOME, EstimateResult
from vagg_bayes.spec import Spec


class IdentificationWarning(UserWarning):
    """The causal graph says the spec leaves a confounder out, or similar gaps."""


def check_graph(spec: Spec) -> list[str]:
    """Check the spec against its DAG (when it names one) before any sampling.

    Raises :class:`~vagg_bayes.errors.GraphError` for contradictions such as a bad
    control; returns the warnings (missing confounders, controls outside the graph).
    """
    if spec.graph is None:
        return []
    from vagg_bayes.graph import check_spec

    return check_spec(spec.graph, spec)


def frame_hash(df: pd.DataFrame) -> str:
    """SHA-256 of a DataFrame's values and column names (order-sensitive)."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def estimate(
    data: pd.DataFrame,
    spec: Spec,
    *,
    settings: SamplerSettings | None = None,
    source: str = "data",
    parameterization: str = "auto",
) -> EstimateResult:
    """Estimate the effect of ``spec.treatment`` on ``spec.outcome``.

    Parameters
    ----------
    data : DataFrame
        The panel; not modified. Validated against ``spec`` first.
    spec : Spec
    settings : SamplerSettings, optional
        Draws, tune, chains, seed and sampler; default ``SamplerSettings()``.
    source : str, default "data"
        Name of the data in error messages (the file name).
    parameterization : {"auto", "centered", "noncentered"}, default "auto"
        Group effects of non-Gaussian models (Gaussian ones are integrated out).

    Returns
    -------
    EstimateResult
        ``summary("effects")`` has the ``total`` row. With ``spec.mediators`` the
        outcome and one equation per mediator are fitted
        (:func:`~vagg_bayes.effects.mediation.fit_mediation`): ``fits`` holds
        ``"outcome"`` and each mediator; the effects are ``total, direct, indirect,
        indirect:<m> ...`` (plus the ``:control`` / ``:treated`` parts for a Bernoulli
        outcome); ``tables`` holds ``sensitivity``, ``classical`` and, with a group,
        ``group_mediation``; ``figures`` holds ``sensitivity.png``; and
        ``meta["classical_note"]`` says where the classical tests differ and why.

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
    settings = settings or SamplerSettings()
    check_sampler_available(settings.sampler)
    graph_warnings = check_graph(spec)
    for message in graph_warnings:
        warnings.warn(message, IdentificationWarning, stacklevel=2)
    panel = validate_panel(data, spec, source=source)
    start = time.perf_counter()
    tables, figures, extra = {}, {}, {}
    if spec.mediators:
        analysis = fit_mediation(panel, spec, settings, parameterization=parameterization)
        fits, effects = analysis.fits, analysis.effect_draws
        tables, figures, extra = analysis.tables, analysis.figures, analysis.meta
    else:
        design = build_design(panel, spec)
        fit = fit_equation(design, spec.family, settings, parameterization=parameterization)
        fits, effects = {OUTCOME: fit}, {"total": total_effect(fit)}
    result = EstimateResult(
        spec=spec,
        settings=settings,
        fits=fits,
        effect_draws=effects,
        tables=tables,
        figures=figures,
        meta={
            "n_rows": int(len(panel)),
            "n_groups": int(fits[OUTCOME].design.n_groups),
            "data_hash": frame_hash(panel),
            "estimate_seconds": time.perf_counter() - start,
            "identification_warnings": graph_warnings,
            **extra,
        },
    )
    warn_if_failed(result.diagnostics, f"The {spec.family} model of {spec.outcome}")
    return result
