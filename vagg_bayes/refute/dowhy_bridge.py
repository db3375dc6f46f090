"""DoWhy's own refuters, run unchanged on the Bayesian estimate.

:class:`BayesianEstimator` is a ``dowhy.causal_estimator.CausalEstimator`` that wraps
:class:`~vagg_bayes.analysis.Analysis`: DoWhy identifies the effect, hands our
estimator its identified estimand, and its ``refute_estimate`` runs its refuters
(placebo treatment, random common cause, data subset, bootstrap, dummy outcome,
unobserved common cause by direct simulation) exactly as it does for its own
estimators. The estimate is the posterior mean of the total effect for a one-unit rise
of the treatment, times ``treatment_value - control_value``.

DoWhy refits by deep-copying the estimator (``get_new_estimator_object``) and calling
``fit`` on changed data, so the estimator holds only the spec, the sampler settings and
a few numbers of its last fit -- never a fitted model or trace. ``fit`` reads the
treatment, the outcome and the adjustment set from the identified estimand (a random
common cause is added to the estimand's adjustment set, a placebo replaces its
treatment, a dummy outcome its outcome): the spec it fits is the original spec with
those roles, and without its graph (DoWhy has identified the effect).

Speed: within one :func:`dowhy_refutations` call the estimators share a run token (a
plain string, deep-copied with them); fits under one token reuse the compiled model of
the first fit with the same roles (:meth:`Analysis.refit`: frozen priors and encoding,
no recompilation), a placebo or dummy outcome being renamed to the original column
first. Without a token (the estimator used through ``CausalModel.estimate_effect``)
every fit builds a fresh analysis.

Custom estimators get DoWhy's ``method_params["init_params"]`` as one keyword,
unexpanded: ``BayesianEstimator(estimand, init_params={"spec": ..., "settings": ...})``
works as well as the keywords themselves. The class is built on first access
(``dowhy`` is imported then, not when this module is imported).

Rows (``refuter`` = ``dowhy:<name>``, ``effect`` = ``total``) and their rules:

- ``placebo_treatment`` (``placebo_type="permute"``) and ``dummy_outcome``: the pooled
  94 % HDI of the refits' posteriors must cover 0 (their true effect is zero);
- ``random_common_cause``, ``data_subset``, ``bootstrap``: the mean of the refits'
  estimates must lie inside the original 94 % HDI;
- ``add_unobserved_common_cause``: a simulated confounder as strong as the strongest
  observed common cause (DoWhy's linear effects on treatment and outcome: the largest
  regression coefficient of a standardised common cause, signed to pull the estimate
  towards zero) must leave the refit's 94 % HDI on the original side of 0;
  inconclusive when the original HDI covers 0, for a binary treatment or a Bernoulli
  outcome (DoWhy's linear simulation does not apply).

DoWhy's own significance test (its p-value) is reported beside each rule.

May import: numpy, pandas, dowhy (lazily), networkx (lazily), vagg_bayes.analysis
(lazily), vagg_bayes.bayes.sample (lazily), vagg_bayes.graph (lazily),
vagg_bayes.errors (lazily), vagg_bayes.refute.base.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from vagg_bayes.refute.base import Context, Outcome, Row, hdi, register

#: The refuters, by the name of their rows.
REFUTERS = ("placebo_treatment", "random_common_cause", "data_subset", "bootstrap",
            "dummy_outcome", "add_unobserved_common_cause")
#: What the registered ``dowhy`` test runs.
DEFAULT_REFUTERS = ("placebo_treatment", "random_common_cause", "data_subset")
#: Simulations per refuter of the registered test (each is a refit).
DEFAULT_SIMULATIONS = 3
_METHOD = "backdoor.vagg_bayes.refute.dowhy_bridge.BayesianEstimator"

# Per-run state shared by the deep copies of one run's estimators: compiled analyses
# (token, role key) -> Analysis, and the log of every fit (token -> list of dicts).
_ANALYSES: dict[tuple, object] = {}
_LOG: dict[str, list[dict]] = {}


def __getattr__(name: str):
    if name == "BayesianEstimator":
        return _estimator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def _quiet() -> Iterator[list]:
    """Silence DoWhy's log records and Python warnings; yield the caught warnings."""
    logger = logging.getLogger("dowhy")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        logger.setLevel(level)


_CLASS = None


def _estimator_class():
    """Build (once) the ``CausalEstimator`` subclass; imports DoWhy."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    with _quiet():
        from dowhy.causal_estimator import CausalEstimate, CausalEstimator

    class BayesianEstimator(CausalEstimator):
        """DoWhy estimator wrapping the Bayesian analysis (see the module docstring).

        Parameters
        ----------
        identified_estimand : dowhy IdentifiedEstimand
        spec : Spec
            The model; its treatment, outcome and controls are replaced by the
            estimand's roles at every fit.
        settings : SamplerSettings, optional
        effect : str, default "total"
            The effect reported (``total``; with mediators also ``direct``).
        init_params : dict, optional
            ``spec``, ``settings``, ``effect`` as one dictionary (DoWhy passes
            ``method_params["init_params"]`` unexpanded to custom estimators).
        token : str, optional
            Run token: fits with one token share compiled analyses and a log.
        **kwargs
            DoWhy's estimator options (``test_significance``, ...).
        """

        def __init__(self, identified_estimand, spec=None, settings=None, effect="total",
                     init_params=None, token=None, **kwargs):
            params = dict(init_params or {})
            spec = params.pop("spec", spec)
            settings = params.pop("settings", settings)
            effect = params.pop("effect", effect)
            token = params.pop("token", token)
            if spec is None:
                raise ValueError("BayesianEstimator needs a spec (init_params={'spec': ...}).")
            kwargs = {k: v for k, v in kwargs.items() if not k.endswith("_estimator")}
            super().__init__(identified_estimand, **{**params, **kwargs})
            self._spec = spec
            self._settings = settings
            self._effect = effect
            self._token = token
            self._summary: dict | None = None
            self.symbolic_estimator = "posterior mean of the Bayesian model's effect"

        # -- fitting ----------------------------------------------------------------
        def fit(self, data: pd.DataFrame, effect_modifier_names=None, **_):
            """Fit the spec with the estimand's roles to ``data``; keep a summary only."""
            self.reset_encoders()
            self._set_effect_modifiers(data, effect_modifier_names)
            self.need_conditional_estimates = False
            estimand = self._target_estimand
            treatment = estimand.treatment_variable[0]
            outcome = estimand.outcome_variable[0]
            adjustment = list(estimand.get_adjustment_set() or [])
            self._summary = _fit(self._spec, self._settings, self._effect, self._token,
                                 data, treatment, outcome, adjustment)
            return self

        def estimate_effect(self, data=None, treatment_value=1, control_value=0,
                            target_units=None, **_):
            """Return the posterior mean effect of moving from control to treated value."""
            if self._summary is None:
                raise RuntimeError("BayesianEstimator.estimate_effect needs fit() first.")
            self._target_units = target_units
            self._treatment_value = treatment_value
            self._control_value = control_value
            delta = float(np.mean(treatment_value) - np.mean(control_value))
            estimate = CausalEstimate(
                data=data,
                treatment_name=self._target_estimand.treatment_variable,
                outcome_name=self._target_estimand.outcome_variable,
                estimate=delta * self._summary["mean"],
                control_value=control_value,
                treatment_value=treatment_value,
                target_estimand=self._target_estimand,
                realized_estimand_expr=self.symbolic_estimator,
                posterior_sd=abs(delta) * self._summary["sd"],
                hdi=tuple(delta * v for v in self._summary["hdi"]),
            )
            estimate.add_estimator(self)
            return estimate

        def construct_symbolic_estimator(self, estimand):
            """Describe the estimator (DoWhy prints it)."""
            return self.symbolic_estimator

    BayesianEstimator.__module__ = __name__
    BayesianEstimator.__qualname__ = "BayesianEstimator"
    _CLASS = BayesianEstimator
    return _CLASS


def _roles_key(spec) -> tuple:
    return (spec.treatment, spec.outcome, spec.controls)


def _fit(spec, settings, effect, token, data, treatment, outcome, adjustment) -> dict:
    """Fit one DoWhy-made dataset; return the effect's summary (and log it)."""
    from vagg_bayes.analysis import Analysis
    from vagg_bayes.bayes.sample import SamplerSettings
    from vagg_bayes.errors import DataError

    settings = settings or SamplerSettings()
    frame = data
    # a placebo treatment or dummy outcome takes the original column's place, so the
    # original spec's compiled model serves it
    renamed = {}
    for role, column in (("treatment", treatment), ("outcome", outcome)):
        original = getattr(spec, role)
        if column != original:
            frame = frame.drop(columns=[original], errors="ignore").rename(
                columns={column: original})
            renamed[role] = column
    roles = {spec.unit, spec.group, spec.time, *spec.mediators} - {None}
    controls = [c for c in adjustment if c not in roles
                and c not in (spec.treatment, spec.outcome)]
    # the spec's own order first, so the original roles find the original compiled model
    controls = tuple([c for c in spec.controls if c in controls]
                     + [c for c in controls if c not in spec.controls])
    fitted_spec = spec.with_(controls=controls, graph=None)
    key = (token, _roles_key(fitted_spec))
    log = _LOG.setdefault(token, []) if token is not None else []
    seed = settings.random_seed + len(log)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analysis = _ANALYSES.get(key) if token is not None else None
        result = None
        if analysis is not None:
            try:
                result = analysis.refit(frame, seed=seed)
            except (DataError, ValueError):  # e.g. a category level the first fit lacked
                result = None
        if result is None:
            analysis = Analysis(fitted_spec, settings)
            result = analysis.fit(frame, tables=False)
            if token is not None:
                _ANALYSES[key] = analysis
    draws = np.asarray(result.effect_draws[effect], dtype=float).ravel()
    summary = {
        "treatment": treatment, "outcome": outcome, "controls": list(controls),
        "renamed": renamed, "mean": float(draws.mean()), "sd": float(draws.std(ddof=1)),
        "hdi": hdi(draws), "seconds": time.perf_counter() - start,
        "warnings": [str(w.message).split("\n")[0] for w in caught
                     if w.category.__name__ == "ConvergenceWarning"],
    }
    if token is not None:
        log.append({**summary, "draws": draws[:: max(1, draws.size // 1000)]})
    return summary


# -- identification and the refutation run ----------------------------------------------------
def adjustment_graph(treatment: str, outcome: str, adjustment: Sequence[str],
                     mediators: Sequence[str] = ()):
    """Build the graph DoWhy identifies on from an adjustment set.

    Each adjustment variable causes treatment and outcome; the treatment causes the
    outcome, directly and through the mediators.
    """
    import networkx as nx

    g = nx.DiGraph()
    g.add_edge(treatment, outcome)
    for w in adjustment:
        g.add_edge(w, treatment)
        g.add_edge(w, outcome)
    for m in mediators:
        g.add_edge(treatment, m)
        g.add_edge(m, outcome)
    return g


def identify(spec, data: pd.DataFrame, *, graph: str = "auto"):
    """DoWhy's identified estimand of the total effect, and which graph gave it.

    ``graph="auto"``: the spec's DAG when it names one and DoWhy finds a back-door set
    of observed columns in it, else the adjustment graph of the spec's controls
    (:func:`adjustment_graph`); ``"dag"`` or ``"adjustment"`` force one.
    """
    with _quiet():
        from dowhy import CausalModel

    def from_graph(g):
        with _quiet():
            model = CausalModel(data=data, treatment=spec.treatment, outcome=spec.outcome,
                                graph=g)
            return model, model.identify_effect(proceed_when_unidentifiable=True)

    if graph in ("auto", "dag") and spec.graph is not None:
        from vagg_bayes.graph import load_graph

        dag = load_graph(spec.graph).to_networkx()
        for node in dag.nodes:
            if node not in data.columns:
                dag.nodes[node]["observed"] = "no"
        model, estimand = from_graph(dag)
        backdoor = (estimand.backdoor_variables or {}).get("backdoor")
        if backdoor is not None and set(backdoor) <= set(data.columns):
            return model, estimand, f"the DAG {spec.graph.name}"
        if graph == "dag":
            raise ValueError(f"DoWhy finds no back-door set of observed columns in "
                             f"{spec.graph}; use graph='adjustment'.")
    g = adjustment_graph(spec.treatment, spec.outcome, spec.controls, spec.mediators)
    model, estimand = from_graph(g)
    return model, estimand, "the adjustment graph of the spec's controls"


def _refuter_call(name: str, *, simulations: int, seed: int, treatment: str, outcome: str,
                  kappa: tuple[float, float] | None):
    """DoWhy's refuter function and its keyword arguments."""
    from dowhy.causal_refuters.add_unobserved_common_cause import sensitivity_simulation
    from dowhy.causal_refuters.bootstrap_refuter import refute_bootstrap
    from dowhy.causal_refuters.data_subset_refuter import refute_data_subset
    from dowhy.causal_refuters.dummy_outcome_refuter import refute_dummy_outcome
    from dowhy.causal_refuters.placebo_treatment_refuter import (
        PlaceboType,
        refute_placebo_treatment,
    )
    from dowhy.causal_refuters.random_common_cause import refute_random_common_cause

    # a RandomState, not an int: DoWhy's subset and bootstrap refuters pass an int seed
    # to every simulation, which would draw the same rows each time
    common = {"num_simulations": simulations, "random_state": np.random.RandomState(seed),
              "treatment_name": [treatment], "outcome_name": [outcome]}
    if name == "placebo_treatment":
        return refute_placebo_treatment, {**common, "placebo_type": PlaceboType.PERMUTE,
                                          "treatment_names": [treatment]}
    if name == "random_common_cause":
        return refute_random_common_cause, common
    if name == "data_subset":
        return refute_data_subset, {**common, "subset_fraction": 0.8}
    if name == "bootstrap":
        return refute_bootstrap, common
    if name == "dummy_outcome":
        # DoWhy's class default; the function's own (None) selects no variables and fails
        # and it indexes the treatment as a list but needs the outcome as one name
        common.pop("random_state")
        return refute_dummy_outcome, {**common, "outcome_name": outcome,
                                      "required_variables": True}
    if name == "add_unobserved_common_cause":
        return sensitivity_simulation, {
            "treatment_name": [treatment], "outcome_name": [outcome],
            "kappa_t": kappa[0], "kappa_y": kappa[1],
            "confounders_effect_on_treatment": "linear",
            "confounders_effect_on_outcome": "linear"}
    raise ValueError(f"Unknown DoWhy refuter {name!r}; choose from {', '.join(REFUTERS)}.")


def _kappa(data: pd.DataFrame, estimand, treatment: str, outcome: str,
           sign: float) -> tuple[float, float] | None:
    """Scale a simulated confounder as the strongest observed common cause.

    DoWhy's ``linear`` kappas are regression coefficients of a standard normal
    confounder. They are set to the largest coefficient of a standardised observed
    common cause in the regression of the treatment on the common causes (``kappa_t``)
    and of the outcome on the treatment and the common causes (``kappa_y``), signed so
    that the confounding they add pulls the estimate towards zero.
    """
    names = list(estimand.get_adjustment_set() or [])
    if not names:
        return None
    W = pd.get_dummies(data[names], drop_first=True, dtype=float).to_numpy(dtype=float)
    W = W[:, W.std(axis=0) > 0]
    if W.shape[1] == 0:
        return None
    W = (W - W.mean(axis=0)) / W.std(axis=0)
    t = data[treatment].to_numpy(dtype=float)
    y = data[outcome].to_numpy(dtype=float)
    ones = np.ones((len(t), 1))
    coef_t = np.linalg.lstsq(np.hstack([ones, W]), t, rcond=None)[0][1:]
    coef_y = np.linalg.lstsq(np.hstack([ones, t[:, None], W]), y, rcond=None)[0][2:]
    # DoWhy adds kappa_t * w to the treatment and subtracts kappa_y * w from the outcome
    return float(np.abs(coef_t).max()), float(sign * np.abs(coef_y).max())


def _is_binary(series: pd.Series) -> bool:
    values = pd.unique(series.dropna())
    return len(values) <= 2 and set(np.asarray(values, dtype=float)) <= {0.0, 1.0}


def _row(name: str, refutation, fits: list[dict], original: dict, detail_head: str) -> Row:
    """Judge one DoWhy refutation by its rule (module docstring)."""
    estimate = original["mean"]
    lo0, hi0 = original["hdi"]
    p = math.nan
    result = getattr(refutation, "refutation_result", None)
    if isinstance(result, dict) and "p_value" in result:
        p = float(result["p_value"])
    dowhy_text = (f"DoWhy's own test: p = {p:.3g}" if not math.isnan(p) else
                  "DoWhy reports no p-value")
    unconverged = sum(bool(f["warnings"]) for f in fits)
    note = f"; {unconverged} of {len(fits)} refits had convergence warnings" if unconverged else ""
    new = refutation.new_effect
    refuted = float(np.mean(new)) if new is not None else math.nan
    base = dict(refuter=f"dowhy:{name}", effect="total", estimate=estimate,
                n_refits=len(fits), seconds=float(sum(f["seconds"] for f in fits)), p_value=p)
    if not fits:
        return Row(**base, refuted_estimate=refuted, hdi_low=math.nan, hdi_high=math.nan,
                   verdict="inconclusive", detail=f"{detail_head}; no refit was logged")
    pooled = np.concatenate([f["draws"] for f in fits])
    lo, hi = hdi(pooled)
    if name in ("placebo_treatment", "dummy_outcome"):
        ok = lo <= 0 <= hi
        rule = "passes when the pooled 94 % HDI of the refits covers 0 (true effect zero)"
        seen = f"pooled HDI [{lo:.4g}, {hi:.4g}], mean {refuted:.4g}"
    elif name == "add_unobserved_common_cause":
        rule = ("passes when the refit's 94 % HDI under a simulated confounder as strong as "
                "the strongest observed common cause stays on the original side of 0")
        if lo0 <= 0 <= hi0:
            return Row(**base, refuted_estimate=refuted, hdi_low=lo, hdi_high=hi,
                       verdict="inconclusive",
                       detail=f"{detail_head}; {rule}; the original HDI already covers 0")
        ok = (lo > 0) if estimate > 0 else (hi < 0)
        seen = f"refit HDI [{lo:.4g}, {hi:.4g}], mean {refuted:.4g}"
    else:
        ok = lo0 <= refuted <= hi0
        rule = "passes when the refits' mean lies inside the original 94 % HDI"
        seen = (f"refits' mean {refuted:.4g} vs original HDI [{lo0:.4g}, {hi0:.4g}]")
    return Row(**base, refuted_estimate=refuted, hdi_low=lo, hdi_high=hi,
               verdict="pass" if ok else "fail",
               detail=f"{detail_head}; {rule}: {seen}; {dowhy_text}{note}")


def dowhy_refutations(result_or_analysis, data: pd.DataFrame,
                      refuters: Sequence[str] = DEFAULT_REFUTERS, *,
                      simulations: int = DEFAULT_SIMULATIONS, seed: int = 0,
                      graph: str = "auto", effect: str = "total") -> list[Row]:
    """Run DoWhy's refuters on the Bayesian estimate; one row per refuter.

    Parameters
    ----------
    result_or_analysis : EstimateResult or Analysis
        Supplies the spec and the sampler settings. A fitted :class:`Analysis` fitted to
        ``data`` also serves as the compiled model of the refits with the original roles.
    data : DataFrame
        The panel (every column DoWhy may use).
    refuters : sequence of str
        Names from :data:`REFUTERS`.
    simulations : int, default 3
        Simulations (refits) per refuter; ``add_unobserved_common_cause`` runs one.
    seed : int, default 0
        Seeds DoWhy's random choices (its ``random_state`` and NumPy's global generator,
        restored afterwards).
    graph : {"auto", "dag", "adjustment"}
        Which graph DoWhy identifies the effect on (:func:`identify`).
    effect : str, default "total"

    Returns
    -------
    list of Row
        ``refuter`` = ``dowhy:<name>``; a refuter that raises gives an inconclusive row
        naming the error.
    """
    from vagg_bayes.analysis import Analysis

    unknown = [r for r in refuters if r not in REFUTERS]
    if unknown:
        raise ValueError(f"Unknown DoWhy refuter(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(REFUTERS)}.")
    spec, settings = result_or_analysis.spec, result_or_analysis.settings
    token = uuid.uuid4().hex
    data = data.reset_index(drop=True)
    if isinstance(result_or_analysis, Analysis) and result_or_analysis.fitted:
        plain = spec.with_(graph=None)
        _ANALYSES[(token, _roles_key(plain))] = result_or_analysis
    estimator_class = _estimator_class()
    rows: list[Row] = []
    state = np.random.get_state()
    try:
        model, estimand, where = identify(spec, data, graph=graph)
        with _quiet():
            estimate = model.estimate_effect(
                estimand, method_name=_METHOD,
                method_params={"init_params": {"spec": spec, "settings": settings,
                                               "effect": effect, "token": token}})
        assert isinstance(estimate.estimator, estimator_class)
        original = _LOG[token][-1]
        adjustment = list(estimand.get_adjustment_set() or [])
        head = (f"DoWhy 0.14 refute_estimate on the Bayesian estimator ({effect} effect; "
                f"identified on {where}; adjustment set: {', '.join(adjustment) or 'empty'})")
        for k, name in enumerate(refuters):
            start = len(_LOG[token])
            np.random.seed(seed + k)
            kappa = None
            text = head
            try:
                if name == "add_unobserved_common_cause":
                    if _is_binary(data[spec.treatment]) or spec.family != "gaussian":
                        rows.append(Row(f"dowhy:{name}", effect, original["mean"], math.nan,
                                        math.nan, math.nan, "inconclusive",
                                        f"{head}; DoWhy's linear confounder simulation needs "
                                        "a continuous treatment and a Gaussian outcome"))
                        continue
                    kappa = _kappa(data, estimand, spec.treatment, spec.outcome,
                                   math.copysign(1.0, original["mean"]))
                    if kappa is None:
                        rows.append(Row(f"dowhy:{name}", effect, original["mean"], math.nan,
                                        math.nan, math.nan, "inconclusive",
                                        f"{head}; no observed common cause to scale the "
                                        "simulated confounder"))
                        continue
                    text = f"{head}; kappa_t = {kappa[0]:.3g}, kappa_y = {kappa[1]:.3g}"
                fn, kwargs = _refuter_call(name, simulations=simulations, seed=seed + k,
                                           treatment=spec.treatment, outcome=spec.outcome,
                                           kappa=kappa)
                from dowhy.causal_refuters.refute_estimate import refute_estimate

                with _quiet():
                    results = refute_estimate(data, copy.deepcopy(estimand), estimate,
                                              refuters=[fn], **kwargs)
                fits = _LOG[token][start:]
                text += f"; {name}: {len(fits)} refit(s)"
                if name == "random_common_cause":
                    added = sorted({c for f in fits for c in f["controls"]} - set(adjustment))
                    text += f", controls added: {', '.join(added) or 'none'}"
                rows.append(_row(name, results[0], fits, original, text))
            except Exception as exc:  # noqa: BLE001 - one refuter must not end the run
                rows.append(Row(f"dowhy:{name}", effect, original["mean"], math.nan, math.nan,
                                math.nan, "inconclusive",
                                f"{text}; the refuter failed: {type(exc).__name__}: {exc}",
                                n_failed=1))
    finally:
        np.random.set_state(state)
        for key in [k for k in _ANALYSES if k[0] == token]:
            del _ANALYSES[key]
        _LOG.pop(token, None)
    return rows


@register("dowhy")
def dowhy(context: Context) -> Outcome:
    """DoWhy's placebo (permute), random common cause and data subset refuters.

    ``Options.replicates`` simulations each (at least 2), seeded from ``Options.seed``.
    """
    sims = max(2, int(getattr(context.options, "replicates", DEFAULT_SIMULATIONS)))
    rows = dowhy_refutations(context.analysis, context.data, DEFAULT_REFUTERS,
                             simulations=sims, seed=context.options.seed)
    return Outcome(rows)
