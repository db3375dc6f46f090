"""The analysis object: fit a spec once, then refit it to changed data cheaply.

:class:`Analysis` is the one place where equations are fitted. ``fit(data)`` validates
the data, builds the design of every equation (:mod:`vagg_bayes.equations`), sets the
priors from these first data, compiles one model per equation, samples, and turns the
fits into effects and tables. ``refit(data)`` fits the same spec to changed data (a
permuted treatment, a subset of cities, resampled cities, an added column) and reuses
what does not change:

- the data encoding: category levels, unit means, standardisation
  (``build_design(..., reference=...)``);
- the priors of the first fit, frozen (so replicates of a placebo or a bootstrap are
  compared under one prior);
- the compiled model and NUTS step of each Gaussian equation (its shared variables are
  updated; nothing is recompiled);
- the NUTS adaptation of the first fit (mass matrix, step size, last point of each
  chain): a refit tunes the step size briefly (``settings.warm_tune``) and draws, instead
  of adapting from scratch (``refit(..., warm=False)`` adapts afresh);
- seeds: ``refit(data, seed=s)`` with ``s`` an int or a
  :class:`numpy.random.SeedSequence` (use :meth:`Analysis.replicate_seeds` for many
  replicates: ``SeedSequence.spawn`` never collides). Equation ``k`` of a fit gets child
  ``k`` of the seed. ``refit`` on the first data with the first seed reproduces
  ``fit``'s draws exactly.

May import: every vagg_bayes subpackage below it (data, bayes, equations, effects,
graph, report, spec, provenance).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import pandas as pd

from vagg_bayes import progress
from vagg_bayes.bayes.diagnostics import warn_if_failed
from vagg_bayes.bayes.fit import EquationModel, child_seed, fit_joint_pair
from vagg_bayes.bayes.priors import default_priors
from vagg_bayes.bayes.sample import SamplerSettings, check_sampler_available, seed_sequence
from vagg_bayes.data.panel import validate_panel
from vagg_bayes.effects.decompose import decompose
from vagg_bayes.effects.total import total_effect
from vagg_bayes.equations import OUTCOME, equation_designs, joint_mediator
from vagg_bayes.provenance import frame_hash
from vagg_bayes.report.result import EstimateResult
from vagg_bayes.spec import Spec


def _fitting(name: str, k: int, n: int, spec: Spec, design) -> str:
    """The stage line of equation ``k`` of ``n``."""
    what = (f"the outcome equation {spec.outcome}" if name == OUTCOME
            else f"the mediator equation {name}")
    return f"fitting {what} {k + 1}/{n} ({design.n} rows) ..."


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


class Analysis:
    """Fit, refit, predict and intervene with one spec.

    Parameters
    ----------
    spec : Spec
    settings : SamplerSettings, optional
        Draws, tune, chains, seed and sampler; default ``SamplerSettings()``.
    parameterization : {"auto", "centred", "noncentred"}, default "auto"
        Group effects of a Bernoulli outcome (Gaussian ones are integrated out).
    prior_scale : float, default 1.0
        Multiplies the scale of every default prior (coefficient SDs, group-effect SD
        scales, the residual SD's prior mean) of every equation; 2 is a wider prior,
        0.5 a narrower one (prior sensitivity). 1 leaves the defaults untouched.

    Examples
    --------
    >>> analysis = Analysis(spec, SamplerSettings(random_seed=1))   # doctest: +SKIP
    >>> result = analysis.fit(panel)                                 # doctest: +SKIP
    >>> placebo = analysis.refit(panel.assign(va=permuted), seed=7)  # doctest: +SKIP
    """

    def __init__(self, spec: Spec, settings: SamplerSettings | None = None, *,
                 parameterization: str = "auto", prior_scale: float = 1.0):
        if not prior_scale > 0:
            raise ValueError(f"prior_scale must be positive; got {prior_scale!r}.")
        self.spec = spec
        self.settings = settings or SamplerSettings()
        self.parameterization = parameterization
        self.prior_scale = float(prior_scale)
        self._models: dict[str, EquationModel] | None = None
        self._designs: dict | None = None
        self._joint: str | None = None
        self._joint_priors: tuple | None = None
        self._joint_model = None  # bayes.joint.JointModel, built at the first fit
        self._graph_warnings: list[str] = []
        self._iv = None  # the first fit's IV designs (bayes/iv.py), when spec.instrument
        self._iv_priors = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return self._models is not None

    def replicate_seeds(self, n: int) -> list[np.random.SeedSequence]:
        """``n`` independent seeds for replicates, spawned from the settings' seed."""
        return np.random.SeedSequence([self.settings.random_seed, 0xA11CE]).spawn(n)

    # ------------------------------------------------------------------ fitting
    def fit(self, data: pd.DataFrame, *, source: str = "data",
            tables: bool = True) -> EstimateResult:
        """Fit the spec to ``data`` (validated first; not modified).

        Parameters
        ----------
        data : DataFrame
        source : str, default "data"
            Name of the data in error messages (the file name).
        tables : bool, default True
            Compute the mediation tables (sensitivity, classical tests, per-group
            effects) besides the effects.

        Returns
        -------
        EstimateResult

        Raises
        ------
        SpecError, DataError, GraphError
            Before any sampling, when the spec, the data or the DAG are unusable.
        """
        check_sampler_available(self.settings.sampler)
        if self.spec.shock_year is not None:  # the shock design (designs/shock.py)
            return self._fit_shock(data, source)
        if self.spec.instrument:  # Bayesian IV (bayes/iv.py)
            return self._fit_iv(data, source=source)
        self._graph_warnings = check_graph(self.spec)
        for message in self._graph_warnings:
            warnings.warn(message, IdentificationWarning, stacklevel=2)
        panel = validate_panel(data, self.spec, source=source)
        designs, notes = equation_designs(panel, self.spec, source=source)
        self._designs = designs
        self._joint = (joint_mediator(self.spec, designs, designs[OUTCOME])
                       if self.spec.mediators else None)
        jointly = {self._joint, OUTCOME} if self._joint else set()
        self._models = {}
        for name, design in designs.items():
            if name in jointly:
                continue
            family = "gaussian" if name != OUTCOME else self.spec.family
            self._models[name] = EquationModel(
                design, family, self.settings,
                priors=self._scaled(default_priors(design, family)),
                parameterization=self.parameterization)
        if self._joint:
            self._joint_priors = tuple(
                dataclasses.replace(self._scaled(default_priors(designs[name], "gaussian")),
                                    joint=True)
                for name in (self._joint, OUTCOME))
        return self._run(panel, designs, notes, seed_sequence(self.settings.random_seed),
                         tables=tables, announce=True)

    def _fit_shock(self, data: pd.DataFrame, source: str) -> EstimateResult:
        """Fit the shock design: the event-study panel, by an inner Analysis."""
        from vagg_bayes.designs.shock import event_study_panel, event_study_result

        self._graph_warnings = check_graph(self.spec)
        for message in self._graph_warnings:
            warnings.warn(message, IdentificationWarning, stacklevel=3)
        study = event_study_panel(data, self.spec, source=source)
        inner = Analysis(study.spec, self.settings, parameterization=self.parameterization,
                         prior_scale=self.prior_scale)
        result = event_study_result(inner.fit(study.frame, source=source, tables=False),
                                    study, self.spec)
        result.meta["identification_warnings"] = self._graph_warnings
        self._models, self._designs = inner._models, inner._designs
        return result

    def _fit_iv(self, data: pd.DataFrame, *, source: str, seed=None,
                loglik: bool = True) -> EstimateResult:
        """Bayesian IV (:mod:`vagg_bayes.bayes.iv`): fit, or refit with the first fit's
        encoding and priors (the model is rebuilt; no compiled model is reused)."""
        from vagg_bayes.bayes.iv import FIRST_STAGE, default_iv_priors, fit_iv, iv_designs
        from vagg_bayes.errors import DataWarning

        first = not self.fitted
        if first:
            self._graph_warnings = check_graph(self.spec)
            for message in self._graph_warnings:
                warnings.warn(message, IdentificationWarning, stacklevel=3)
        panel = validate_panel(data, self.spec, source=source)
        ivd = iv_designs(panel, self.spec, reference=None if first else self._iv,
                         source=source)
        if first:
            self._iv, self._iv_priors = ivd, default_iv_priors(ivd, self.prior_scale)
            self._designs = {FIRST_STAGE: ivd.first, OUTCOME: ivd.outcome}
            self._models = {}
        strength = ivd.strength
        if strength.weak:
            warnings.warn(strength.warning(), DataWarning, stacklevel=3)
        seed = seed_sequence(self.settings.random_seed if seed is None else seed)
        state = int(child_seed(seed, 0).generate_state(1)[0] % (2**31))
        settings = SamplerSettings(**{**self.settings.to_dict(), "random_seed": state})
        if first:
            progress.stage(f"fitting the first stage of {self.spec.treatment} and the outcome "
                           f"equation {self.spec.outcome} jointly (IV; {len(panel)} rows) ...")
        start = time.perf_counter()
        fits = fit_iv(ivd, self._iv_priors, settings, loglik=loglik)
        outcome = fits[OUTCOME]
        result = EstimateResult(
            spec=self.spec, settings=self.settings, fits=fits,
            effect_draws={"total": outcome.beta[..., outcome.design.treatment_index]},
            meta=self._meta(panel, fits, outcome, seed, start,
                            first_stage=strength.to_dict()),
        )
        warn_if_failed(result.diagnostics,
                       f"The IV model of {self.spec.outcome} on {self.spec.treatment}")
        return result

    def _meta(self, panel: pd.DataFrame, fits: dict, outcome, seed, start: float,
              **extra) -> dict:
        """The run record every result carries (rows, groups, data hash, seed, time,
        identification warnings, unit and group-time effects per equation), then
        ``extra``."""
        return {
            "n_rows": int(len(panel)),
            "n_groups": int(outcome.design.n_groups),
            "data_hash": frame_hash(panel),
            "seed": {"entropy": str(seed.entropy), "spawn_key": list(seed.spawn_key)},
            "estimate_seconds": time.perf_counter() - start,
            "identification_warnings": self._graph_warnings,
            "unit_effects": {n: f.design.unit_effects for n, f in fits.items()},
            "group_time_effects": {n: f.design.group_time for n, f in fits.items()},
            **extra,
        }

    def _scaled(self, priors):
        """``priors`` with every scale multiplied by ``prior_scale`` (unchanged at 1)."""
        s = self.prior_scale
        if s == 1.0:
            return priors
        return dataclasses.replace(
            priors, theta_sd=priors.theta_sd * s, tau_scale=priors.tau_scale * s,
            sigma_rate=None if priors.sigma_rate is None else priors.sigma_rate / s)

    def refit(self, data: pd.DataFrame, *, seed=None, source: str = "data",
              tables: bool = False, warm: bool = True, loglik: bool = False
              ) -> EstimateResult:
        """Fit the same spec to changed data with the first fit's encoding and priors.

        Parameters
        ----------
        data : DataFrame
            Must have the spec's columns; category levels the first data lacked are a
            :class:`~vagg_bayes.errors.DataError`.
        seed : int or SeedSequence, optional
            Default: the settings' seed (then a refit on the first data reproduces the
            first fit's draws exactly).
        tables : bool, default False
            Also compute the mediation tables (slower; replicates rarely need them).
        warm : bool, default True
            Start the sampler from the first fit's adaptation (PyMC's NUTS); False
            adapts afresh, as the first fit did (same draws on the first data and seed).
        loglik : bool, default False
            Also compute the pointwise log-likelihood (LOO of a refit, exact
            leave-one-group-out); replicates rarely need it.
        """
        if not self.fitted:
            raise RuntimeError("refit() needs a fitted Analysis: call fit(data) first.")
        if self.spec.shock_year is not None:
            from vagg_bayes.errors import SpecError

            raise SpecError("Refits (refutation tests, comparisons, scenarios) of the shock "
                            "design ([design].shock_year) are not available yet; run "
                            "`vagg-bayes estimate`, or remove [design].shock_year.")
        if self.spec.instrument:  # the IV model is rebuilt with the first fit's priors
            return self._fit_iv(data, source=source, seed=seed, loglik=loglik)
        panel = validate_panel(data, self.spec, source=source)
        designs, notes = equation_designs(panel, self.spec, reference=self._designs)
        seed = seed_sequence(self.settings.random_seed if seed is None else seed)
        return self._run(panel, designs, notes, seed, tables=tables, warm=warm, loglik=loglik)

    def _run(self, panel: pd.DataFrame, designs: dict, notes: dict,
             seed: np.random.SeedSequence, *, tables: bool, warm: bool = True,
             loglik: bool = True, announce: bool = False) -> EstimateResult:
        spec = self.spec
        start = time.perf_counter()
        # stage lines (vagg_bayes.progress): a first fit says what it fits; refits do not
        say = progress.stage if announce else (lambda message: None)
        fits = {}
        names = list(designs)
        for k, name in enumerate(names):
            if name in self._models:
                say(_fitting(name, k, len(names), spec, designs[name]))
                fits[name] = self._models[name].fit(designs[name], seed=child_seed(seed, k),
                                                    warm=warm, loglik=loglik)
        if self._joint is not None:
            from vagg_bayes.bayes.joint import JointModel

            say(f"fitting the mediator equation {self._joint} and the outcome equation "
                f"{spec.outcome} jointly ({len(names)}/{len(names)}) ...")
            pair = (designs[self._joint], designs[OUTCOME])
            if self._joint_model is not None:
                try:  # same groups and columns: the compiled pair, new shared values
                    self._joint_model.use(*pair)
                except ValueError:
                    self._joint_model = None
            if self._joint_model is None:
                self._joint_model = JointModel(*pair, *self._joint_priors, self.settings)
            fits[self._joint], fits[OUTCOME] = fit_joint_pair(
                *pair, self.settings, priors=self._joint_priors, model=self._joint_model,
                seed=child_seed(seed, len(names)), warm=warm)
        fits = {name: fits[name] for name in names}
        extra_tables, figures, extra = {}, {}, {}
        say("effects ...")
        if spec.mediators:
            dec = decompose(fits[OUTCOME], {m: fits[m] for m in spec.mediators})
            effects = dec.draws
            if tables:
                say("mediation tables (sensitivity, classical tests, per group) ...")
                from vagg_bayes.effects.mediation import mediation_tables

                extra_tables, extra, figures = mediation_tables(
                    panel, spec, fits, dec, notes, joint=self._joint)
            else:
                extra = {"mediators": notes}
        else:
            effects = {"total": total_effect(fits[OUTCOME])}
        if spec.moderators:  # effects at every moderator level, and their contrasts
            from vagg_bayes.effects.heterogeneity import moderator_effects

            effects = {**effects, **moderator_effects(
                fits[OUTCOME], {m: fits[m] for m in spec.mediators})}
        result = EstimateResult(
            spec=spec,
            settings=self.settings,
            fits=fits,
            effect_draws=effects,
            tables=extra_tables,
            figures=figures,
            meta=self._meta(panel, fits, fits[OUTCOME], seed, start, **extra),
        )
        warn_if_failed(result.diagnostics, f"The {spec.family} model of {spec.outcome}")
        return result
