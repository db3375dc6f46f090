"""The result of an estimate: immutable, with ``summary()`` the single source of every table.

``summary("effects")`` feeds ``effects.csv``, ``summary("coefficients")`` feeds
``coefficients.csv``; :meth:`EstimateResult.to_markdown`, :meth:`to_latex` and
``_repr_html_`` render the same frames. :meth:`EstimateResult.write` lays out the
results folder of DESIGN.md section 4.3, every file written atomically.

May import: numpy, pandas, arviz, vagg_bayes.bayes, vagg_bayes.report.*, vagg_bayes.spec.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from vagg_bayes.bayes.diagnostics import (
    Diagnostics,
    boundary_notes,
    check_draws,
    combine_diagnostics,
)
from vagg_bayes.bayes.fit import EquationFit
from vagg_bayes.bayes.sample import SamplerSettings
from vagg_bayes.report import render
from vagg_bayes.report.io import staged_folder, write_atomic, write_csv, write_json
from vagg_bayes.report.tables import HDI_PROB, summarize_draws
from vagg_bayes.spec import Spec

OUTCOME = "outcome"


def _previous_files(out: Path) -> list[str]:
    """List the files a previous run wrote into ``out`` (its manifest's ``files``)."""
    try:
        files = json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, str) and f and "/" not in f and "\\" not in f]


def _coefficient_draws(fit: EquationFit, spec: Spec, prefix: str = "") -> dict:
    """Named (chain, draw) arrays of one equation's parameters, data scale."""
    group = spec.group
    absorbed = {"Intercept"} if fit.design.unit_effects == "fixed" else set()
    out = {f"{prefix}{t}": fit.beta[..., k] for k, t in enumerate(fit.design.terms)
           if t not in absorbed}
    if fit.sigma is not None:
        out[f"{prefix}sigma"] = fit.sigma
    post = fit.idata.posterior if fit.idata is not None else {}
    if "sd_unit" in post:
        out[f"{prefix}sd({spec.unit})"] = np.asarray(post["sd_unit"])
    if "sd_cell" in post:
        out[f"{prefix}sd({group}:{spec.time})"] = np.asarray(post["sd_cell"])
        out[f"{prefix}design_effect({group}:{spec.time})"] = np.asarray(post["design_effect"])
    if fit.group_sd is not None:
        for k, term in enumerate(fit.varying_terms):
            name = f"sd({group})" if k == 0 else f"sd({group}:{term})"
            out[prefix + name] = fit.group_sd[..., k]
        if fit.group_corr is not None:
            out[f"{prefix}corr({group})"] = fit.group_corr
    if fit.idata is not None and "path_corr" in fit.idata.posterior:
        # a joint mediator-outcome fit: correlation of the mediator's treatment path and
        # its path to the outcome across groups
        name = f"corr_paths({group}:{fit.varying_terms[-1]})"
        out[prefix + name] = np.asarray(fit.idata.posterior["path_corr"])
    if fit.idata is not None and "extra" in fit.idata.posterior:
        # further named parameters (the IV model's rho and control-function slopes)
        extra = fit.idata.posterior["extra"]
        for k, name in enumerate(extra["extra_term"].values):
            out[prefix + str(name)] = np.asarray(extra)[..., k]
    return out


@dataclass(frozen=True, eq=False)
class EstimateResult:
    """Posterior effects of the treatment, with the fits behind them.

    Attributes
    ----------
    spec : Spec
    settings : SamplerSettings
    fits : mapping of str -> EquationFit
        ``"outcome"`` and, with mediators, one entry per mediator.
    effect_draws : mapping of str -> ndarray (chain, draw)
        ``total`` and, with mediators, ``direct``, ``indirect``, ``indirect:<m>`` ...
    tables : mapping of str -> DataFrame
        Further tables (sensitivity, classical mediation tests) added by later stages.
    meta : dict
        Data hash, rows, timings: recorded in ``manifest.json``.
    figures : mapping of str -> callable
        File name -> function that writes that figure to the path it is given
        (``sensitivity.png`` with mediators); :meth:`write` writes each atomically.
    """

    spec: Spec
    settings: SamplerSettings
    fits: MappingProxyType
    effect_draws: MappingProxyType
    tables: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    meta: dict = field(default_factory=dict)
    figures: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        for name in ("fits", "effect_draws", "tables", "figures"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    # ----------------------------------------------------------------- tables
    @functools.cached_property
    def identification(self):
        """The DAG's identification of the effects (adjustment sets, estimands), or None
        without ``[model].graph`` (:func:`vagg_bayes.graph.identify`; imports DoWhy)."""
        if self.spec.graph is None:
            return None
        from vagg_bayes.graph import identify

        return identify(self.spec.graph, self.spec)

    @functools.cached_property
    def diagnostics(self) -> Diagnostics:
        """Worst diagnostics over every equation and every reported effect (computed once).

        With notes on SDs and correlations whose posterior piles up at a bound.
        """
        parts = [f.diagnostics for f in self.fits.values()]
        parts.append(check_draws(dict(self.effect_draws), 0))
        scales = {}
        for name, fit in self.fits.items():
            prefix = "" if name == OUTCOME else f"{name}~"
            draws = _coefficient_draws(fit, self.spec, prefix=prefix)
            scales.update({k: v for k, v in draws.items()
                           if "sd(" in k or "corr" in k or k.endswith("sigma")})
        notes = boundary_notes(scales)
        if notes:
            parts.append(dataclasses.replace(parts[-1], problems=(), notes=notes))
        return combine_diagnostics(parts)

    def summary(self, table: str = "effects") -> pd.DataFrame:
        """The table behind every output.

        Parameters
        ----------
        table : str, default "effects"
            ``"effects"`` (effects.csv), ``"coefficients"`` (coefficients.csv),
            ``"priors"``, ``"group_effects"`` (posterior of each group's treatment
            effect), ``"group_ranking"`` (groups ranked by their total effect, with the
            probability of being in the top 10; written as group_ranking.csv when
            :attr:`ranks_groups`) or the name of one of :attr:`tables`.
        """
        if table == "effects":
            return summarize_draws(dict(self.effect_draws), "effect")
        if table == "coefficients":
            draws = _coefficient_draws(self.fits[OUTCOME], self.spec)
            for name, fit in self.fits.items():
                if name != OUTCOME:
                    draws.update(_coefficient_draws(fit, self.spec, prefix=f"{name}~"))
            return summarize_draws(draws, "term")
        if table == "priors":
            frames = []
            for name, fit in self.fits.items():
                frame = fit.priors.table(fit.design, self.spec.group, unit=self.spec.unit,
                                         time=self.spec.time)
                frame.insert(0, "equation", self.spec.outcome if name == OUTCOME else name)
                frames.append(frame)
            return pd.concat(frames, ignore_index=True)
        if table == "group_effects":
            return self._group_effects()
        if table == "within_between":
            return self._within_between()
        if table == "group_ranking":
            return self._group_ranking()
        if table in self.tables:
            return self.tables[table].copy()
        valid = ["effects", "coefficients", "priors", "group_effects", "within_between",
                 "group_ranking",
                 *self.tables]
        raise KeyError(f"Unknown table {table!r}; valid tables are: {', '.join(valid)}.")

    def _within_between(self) -> pd.DataFrame:
        """Within and between slopes of every regressor with a unit or group mean.

        With ``unit_effects = "within"`` each time-varying regressor ``x`` has its unit
        mean beside it (Mundlak): the coefficient of ``x`` is the within-unit slope, the
        sum of both the between-unit slope, and the mean's coefficient their difference
        (a Bayesian Hausman contrast: far from zero, the unit effects are correlated
        with ``x`` and a model without them would be biased). With ``group_means = true``
        the same at the group level for each regressor with a group mean (within-group
        and between-group slopes; far from zero, a group-level confounder). Columns
        ``equation, term, slope`` (within, between, difference), the usual summary
        columns, and last ``level`` (``unit`` or ``group``).
        """
        frames = []
        for name, fit in self.fits.items():
            terms = fit.design.terms
            pairs = [(k, km, "unit") for k, km in fit.design.mundlak]
            pairs += [(k, km, "group") for k, km in fit.design.group_mundlak]
            for k, km, level in pairs:
                within, diff = fit.beta[..., k], fit.beta[..., km]
                frame = summarize_draws({"within": within, "between": within + diff,
                                         "difference": diff}, "slope")
                frame.insert(0, "term", terms[k])
                frame.insert(0, "equation", self.spec.outcome if name == OUTCOME else name)
                frame["level"] = level
                frames.append(frame)
        if not frames:
            raise KeyError("within_between needs repeated units and unit_effects = \"within\", "
                           "or group_means = true.")
        return pd.concat(frames, ignore_index=True)

    @property
    def ranks_groups(self) -> bool:
        """Whether the groups' total effects can differ (``group_ranking.csv`` is written).

        True with a group and a varying slope, a varying mediator path, moderators or a
        Bernoulli outcome (whose probability-scale effect depends on each group's
        baseline).
        """
        spec = self.spec
        return spec.group is not None and bool(
            spec.varying_slope or spec.varying_mediator or spec.moderators
            or spec.family == "bernoulli")

    def _group_ranking(self) -> pd.DataFrame:
        """Rank the groups by their own total effect, with the probability of the top 10.

        See :func:`vagg_bayes.effects.heterogeneity.group_ranking`.
        """
        from vagg_bayes.effects.heterogeneity import group_ranking

        if self.spec.group is None:
            raise KeyError("group_ranking needs a model with [data].group set.")
        return group_ranking(self.fits[OUTCOME],
                             {m: self.fits[m] for m in self.spec.mediators}, self.spec.group)

    def _group_effects(self) -> pd.DataFrame:
        fit = self.fits[OUTCOME]
        if fit.group_effects is None:
            raise KeyError("group_effects needs a model with [data].group set.")
        k = fit.design.treatment_index
        labels = fit.design.group_labels
        if k in fit.design.varying:
            from vagg_bayes.effects.total import group_slopes

            slope = group_slopes(fit, labels, among=fit.design)  # moderators: rows' mix
            draws = {str(g): slope[..., j] for j, g in enumerate(labels)}
            what = "treatment effect"
        else:
            draws = {str(g): fit.beta[..., 0] + fit.group_effects[..., j, 0]
                     for j, g in enumerate(labels)}
            what = "intercept"
        frame = summarize_draws(draws, self.spec.group)
        frame.insert(1, "quantity", what)
        return frame

    # ----------------------------------------------------------------- prediction
    def predict(self, data: pd.DataFrame, *, seed=0, kind: str = "response") -> np.ndarray:
        """Posterior predictive draws of the outcome for new rows, shape (draws, rows).

        Parameters
        ----------
        data : DataFrame
            New rows with the spec's regressor columns (the outcome column may be absent).
            Groups the fit saw use their posterior effects, new groups draw from the
            population; every unit is treated as a new unit (a held-out firm).
        seed : int or SeedSequence, default 0
        kind : {"response", "mean"}, default "response"
            ``"response"``: draws of new outcomes (residual noise included);
            ``"mean"``: draws of their expected value.
        """
        from vagg_bayes.bayes.predict import predict_draws
        from vagg_bayes.bayes.sample import seed_sequence
        from vagg_bayes.data.panel import validate_panel
        from vagg_bayes.equations import equation_designs

        if kind not in ("response", "mean"):
            raise ValueError(f"kind must be 'response' or 'mean'; got {kind!r}.")
        fit = self.fits[OUTCOME]
        if fit.design.unit_effects == "fixed":
            raise ValueError("unit_effects = \"fixed\" has no distribution of unit effects, so "
                             "it cannot predict new units; use \"within\" (the default).")
        frame = data
        if self.spec.outcome not in frame:
            frame = frame.assign(**{self.spec.outcome: 0})
        panel = validate_panel(frame, self.spec, source="new data", new_rows=True)
        reference = {name: f.design for name, f in self.fits.items()}
        design = equation_designs(panel, self.spec, reference=reference)[0][OUTCOME]
        rng = np.random.default_rng(seed_sequence(seed))
        return predict_draws(fit, design, rng=rng, mean_only=kind == "mean")

    def intervene(self, *, shift: float | None = None, set_to: float | None = None,
                  groups=None):
        """Change the treatment of the sample's rows and return what it does to the outcome.

        Parameters
        ----------
        shift : float, optional
            Raise every (selected) row's treatment by this amount.
        set_to : float, optional
            Set every (selected) row's treatment to this value.
        groups : sequence, optional
            Only rows of these groups (labels of ``spec.group``) are changed.

        Returns
        -------
        vagg_bayes.effects.scenario.Intervention
            Draws of the change in the mean outcome, overall and per group, with the
            part through each mechanism; ``summary()`` gives the table.
        """
        from vagg_bayes.effects.scenario import intervene, treatment_delta

        fit = self.fits[OUTCOME]
        design = fit.design
        rows = None
        if groups is not None:
            if design.group_labels is None:
                raise ValueError("groups= needs a spec with [data].group.")
            wanted = pd.Index(design.group_labels).get_indexer(pd.Index(list(groups)))
            if (wanted < 0).any():
                missing = [g for g, w in zip(groups, wanted) if w < 0]
                raise ValueError(f"Groups {missing} are not in the data's {self.spec.group}.")
            rows = np.isin(design.group_codes, wanted)
        t = design.X[:, design.treatment_index]
        delta = treatment_delta(t, shift=shift, set_to=set_to, rows=rows)
        what = f"shift by {shift}" if shift is not None else f"set to {set_to}"
        mediators = {m: self.fits[m] for m in self.spec.mediators}
        return intervene(fit, mediators, delta, description=f"{self.spec.treatment}: {what}")

    # ----------------------------------------------------------------- rendering
    def to_markdown(self, table: str = "effects", digits: int = 3) -> str:
        """Markdown rendering of :meth:`summary`."""
        return render.to_markdown(self.summary(table), digits)

    def to_latex(self, table: str = "effects", digits: int = 3) -> str:
        """LaTeX (booktabs) rendering of :meth:`summary`."""
        caption = (f"Posterior {table} of {self.spec.treatment} on {self.spec.outcome}; "
                   f"{int(HDI_PROB * 100)}% HDI")
        return render.to_latex(self.summary(table), digits, caption=caption)

    def _repr_html_(self) -> str:
        return (f"<p><b>vagg_bayes</b>: {self.spec.family} model of {self.spec.outcome}</p>"
                + render.to_html(self.summary("effects"))
                + f"<p>{self._diagnostics_line()}</p>")

    def _diagnostics_line(self) -> str:
        d = self.diagnostics
        head = "Diagnostics pass" if d.passed else "DIAGNOSTICS FAIL"
        return (f"{head}: {d.divergences} divergences, max r_hat {d.max_r_hat:.3f}, "
                f"min ess_bulk {d.min_ess_bulk:.0f}, min ess_tail {d.min_ess_tail:.0f}.")

    def __str__(self) -> str:
        spec = self.spec
        lines = [
            f"vagg_bayes estimate: {spec.family} model of {spec.outcome} on {spec.treatment}"
            + (f", varying by {spec.group}" if spec.group else ""),
            f"{self.meta.get('n_rows', '?')} rows; sampler {self.settings.sampler}, "
            f"{self.settings.chains} chains x {self.settings.draws} draws "
            f"(tune {self.settings.tune}), seed {self.settings.random_seed}",
            "",
            self.to_markdown("effects"),
            self._diagnostics_line(),
        ]
        lines += [f"  - {p}" for p in self.diagnostics.problems]
        lines += [f"  note: {n}" for n in self.diagnostics.notes]
        first_stage = self.meta.get("first_stage") or {}
        if first_stage:
            lines.append(f"First stage ({', '.join(first_stage['instruments'])}): F "
                         f"{first_stage['f']:.2f} ({first_stage['f_kind']}), partial R² "
                         f"{first_stage['partial_r2']:.4f}.")
            if first_stage.get("warning"):
                lines.append(f"  - {first_stage['warning']}")
        pre_trend = self.meta.get("design_checks", {}).get("pre_trend")
        if pre_trend and pre_trend.get("passed") is not None:
            lines.append(
                f"Pre-trend check (leads of the shock design): "
                f"{'passes' if pre_trend['passed'] else 'FAILS'} (joint_prob "
                f"{pre_trend['joint_prob']:.3f}; leads whose 94% HDI covers 0: "
                f"{sum(pre_trend['leads_cover_zero'].values())} of "
                f"{len(pre_trend['leads_cover_zero'])}); see pre_trend.csv.")
        return "\n".join(lines)

    # ----------------------------------------------------------------- files
    def write(self, out_dir: str | Path, *, manifest: dict | None = None) -> Path:
        """Write the results folder (DESIGN.md section 4.3) so that it appears whole.

        Every file is written into a hidden folder beside ``out_dir`` first
        (:func:`vagg_bayes.report.io.staged_folder`). A new ``out_dir`` then appears by
        one rename, complete; an existing one has its result files replaced as a set
        (Ctrl-C held back while they move), the previous run's result files that this
        run does not write (listed in its ``manifest.json`` under ``files``) removed,
        and any other file left alone. An error or Ctrl-C while writing leaves
        ``out_dir`` as it was.

        Parameters
        ----------
        out_dir : str or pathlib.Path
            The results folder; created when missing.
        manifest : dict, optional
            Extra entries of ``manifest.json`` (the command line, the data file's hash).

        Returns
        -------
        pathlib.Path
            ``out_dir``.
        """
        out = Path(out_dir)
        with staged_folder(out, replaces=_previous_files(out)) as stage:
            self._write_files(stage, manifest)
        return out

    def _write_files(self, out: Path, manifest: dict | None) -> None:
        """Every file of the results folder into ``out``; ``manifest.json`` lists them."""
        write_csv(out / "effects.csv", self.summary("effects"))
        write_csv(out / "coefficients.csv", self.summary("coefficients"))
        for name in self.tables:
            write_csv(out / f"{name}.csv", self.summary(name))
        if self.ranks_groups:
            write_csv(out / "group_ranking.csv", self.summary("group_ranking"))
        if any(f.design.mundlak or f.design.group_mundlak for f in self.fits.values()):
            write_csv(out / "within_between.csv", self.summary("within_between"))
        for name, draw in self.figures.items():
            write_atomic(out / name, draw)
        diag = self.diagnostics.to_dict()
        diag["sampler"] = self.settings.to_dict()
        diag["wall_time_s"] = {n: f.wall_time for n, f in self.fits.items()}
        diag["equations"] = {n: f.diagnostics.to_dict() for n, f in self.fits.items()}
        if "first_stage" in self.meta:  # an instrument's first-stage strength
            diag["first_stage"] = self.meta["first_stage"]
        diag.update(self.meta.get("design_checks", {}))  # the shock design's pre_trend
        write_json(out / "diagnostics.json", diag)
        write_atomic(out / "posterior.nc", lambda p: self.posterior().to_netcdf(str(p)))
        from vagg_bayes.provenance import environment

        record = {
            **environment(),
            "spec": self.spec.to_dict(),
            "settings": self.settings.to_dict(),
            "priors": self.summary("priors").to_dict(orient="records"),
            **self.meta,
            **(manifest or {}),
        }
        record["files"] = sorted([p.name for p in out.iterdir()] + ["manifest.json"])
        write_json(out / "manifest.json", record)

    def posterior(self):
        """One InferenceData: the outcome equation's groups, plus each mediator's posterior
        as group ``posterior_<mediator>``; the effect draws are the posterior's variable
        ``effects`` (dimensions chain, draw, effect)."""
        import arviz as az

        idata = self.fits[OUTCOME].idata
        extra = {f"posterior_{n}": f.idata.posterior for n, f in self.fits.items()
                 if n != OUTCOME}
        names = list(self.effect_draws)
        stacked = np.stack([np.asarray(self.effect_draws[n]) for n in names], axis=-1)
        post = idata.posterior.assign(
            # not named "effect": a variable named like its dimension would be replaced
            # by the coordinate (and the draws lost from posterior.nc)
            effects=(("chain", "draw", "effect"), stacked)
        ).assign_coords(effect=names)
        groups = {"posterior": post, **{g: idata[g] for g in idata.groups() if g != "posterior"}}
        groups.update(extra)
        return az.InferenceData(**groups)
