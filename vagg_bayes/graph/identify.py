"""Identification: is the effect computable from the data the DAG says we observe, and how?

Two entry points, both run before any sampling:

- :func:`check_spec` checks a :class:`~vagg_bayes.spec.Spec` against a
  :class:`~vagg_bayes.graph.dag.CausalGraph`. It raises :class:`GraphError` for
  contradictions (unknown nodes, a *bad control* that lies on or after a causal path from
  the treatment, a mediator off every treatment -> mediator -> outcome path, mediators
  that cause one another) and returns warnings for gaps (confounders the DAG requires that
  the controls lack, controls that are not in the DAG, ...).
- :func:`identify` returns an immutable :class:`Identification`: the back-door
  adjustment set of the total effect, instruments, front-door variables, and for each
  declared mediator the adjustment sets of its two equations, with estimand texts in
  DoWhy's format and a ``summary()`` table.

How the sets are chosen
-----------------------
Every set is checked with d-separation (``networkx.is_d_separator``) in the back-door
graph (arrows out of the cause removed). Among the valid sets of observed nodes that are
not descendants of the treatment, the search returns the smallest set that *contains the
spec's controls* (ties broken alphabetically); only when no valid set contains them does
it fall back to the smallest valid set overall. This is DoWhy's minimal-adjustment
criterion with a deterministic tie-break: DoWhy's own default set depends on Python's
string hashing and may differ between runs when several minimal sets exist.

DoWhy's ``CausalModel.identify_effect()`` is run on the same graph for the total effect;
its instruments and front-door variables are used (sorted) and its back-door result is
a cross-check. DoWhy's mediation estimand takes a single mediator, so each declared
mediator ``m`` is identified here, as a path-specific effect ``treatment -> m -> outcome``:

- first stage (mediator equation): a back-door set for ``treatment -> m``;
- second stage (outcome equation): a set ``Z`` of pre-treatment observed nodes such that
  ``{treatment} | Z`` blocks every back-door path from ``m`` to the outcome (sequential
  ignorability, no treatment-induced confounding).

Unit-level latent nodes
-----------------------
A latent node marked ``level="unit"`` in the DOT file is a time-invariant, unobserved
characteristic of the row entity (a firm's quality). When the spec's unit effects
identify slopes within units -- ``[data].unit`` and ``[data].time`` set and
``unit_effects`` ``"within"`` or ``"fixed"`` -- the unit effects adjust for it: every set
above is checked conditioning on it as well (it is never listed in a set, which holds
data columns only), and :attr:`Identification.notes` says so. ``check_spec`` sees only
the spec, not the data, so it applies this rule whether or not some unit is actually
seen more than once (:func:`vagg_bayes.data.panel.repeated_units` decides that for the
model). With ``unit_effects = "random"`` (random effects assume the unit effects are
independent of the regressors) or ``"none"``, or without unit and time, such a node is
an ordinary latent confounder; an open back-door path through it gives a warning that
names it and says to set ``unit_effects = "within"``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from vagg_bayes.errors import DataError, GraphError
from vagg_bayes.graph.dag import (
    CausalGraph,
    backdoor_graph,
    is_separated,
    load_graph,
    open_path,
    smallest_separator,
)
from vagg_bayes.spec import Spec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ADJUSTING_UNIT_EFFECTS", "Identification", "check_spec", "identify"]

#: ``unit_effects`` settings whose unit effects adjust for unit-level latent nodes.
ADJUSTING_UNIT_EFFECTS = ("within", "fixed")



# -- the result ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Identification:
    """What the DAG identifies for a spec; produced by :func:`identify`.

    Attributes
    ----------
    treatment, outcome : str
        Names from the spec.
    backdoor : tuple of str
        Sorted back-door adjustment set for the total effect (observed, pre-treatment);
        contains the spec's in-graph controls whenever a valid set can. Empty when the
        empty set suffices or when ``total_identified`` is False.
    mediator_sets : dict of str to tuple of str
        Mediator -> sorted set ``Z`` such that ``{treatment} | Z`` blocks every back-door
        path from the mediator to the outcome (the outcome equation).
    first_stage_sets : dict of str to tuple of str
        Mediator -> sorted back-door set for ``treatment -> mediator`` (the mediator
        equation).
    instruments : tuple of str
        Observed causes of the treatment with no path to the outcome except through the
        treatment and no common cause with the outcome.
    frontdoor : tuple of str
        Front-door variables of the total effect (DoWhy's search), if any.
    estimands : dict of str to str
        Estimand name -> estimand text in DoWhy's format. Names: ``total`` (back-door),
        ``total:iv``, ``total:frontdoor`` and, with mediators, ``direct``, ``indirect``
        and ``indirect:<mediator>``.
    identified : dict of str to bool
        Estimand name -> whether the graph identifies it.
    total_identified : bool
        Whether the total effect is identified nonparametrically (back-door or front-door
        adjustment). Identification by instruments needs parametric assumptions
        (linearity or monotonicity) and is reported in ``identified["total:iv"]`` only.
    latent : tuple of str
        Nodes treated as unobserved: marked ``observed="no"`` in the graph, or (when data
        were given) graph nodes that are not columns of the data.
    warnings : tuple of str
        What :func:`check_spec` found, plus data-related notes.
    unit_adjusted : tuple of str
        Unit-level latent nodes (``level="unit"``) adjusted for by the unit effects
        (``[data].unit`` and ``[data].time`` set, ``unit_effects`` ``"within"`` or
        ``"fixed"``); the sets above are valid given them. Empty otherwise.
    notes : tuple of str
        Facts about the identification that are not problems, e.g. ``"firm_quality:
        unit-level, unobserved; adjusted for by unit effects (unit_effects = within)"``.
    graph_source : str or None
        The DOT file the graph came from.

    Notes
    -----
    The dictionaries are plain ``dict`` so the object survives ``copy.deepcopy`` and
    pickling; treat them as read-only. A set of a mediator that is not identified is
    ``()`` with ``identified["indirect:<m>"]`` False.
    """

    treatment: str
    outcome: str
    backdoor: tuple[str, ...]
    mediator_sets: dict[str, tuple[str, ...]]
    first_stage_sets: dict[str, tuple[str, ...]]
    instruments: tuple[str, ...]
    frontdoor: tuple[str, ...]
    estimands: dict[str, str]
    identified: dict[str, bool]
    total_identified: bool
    latent: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    unit_adjusted: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    graph_source: str | None = field(default=None, compare=False)

    def summary(self) -> pd.DataFrame:
        """One row per estimand.

        Columns: ``estimand``, ``method`` (backdoor / iv / frontdoor / mediation),
        ``identified``, ``adjustment_set`` (outcome equation; for ``total:frontdoor`` the
        front-door variables), ``first_stage_set`` (mediator equation) and
        ``instruments``; sets are comma-separated names, ``""`` when empty.
        """
        import pandas as pd

        def join(names: Iterable[str]) -> str:
            return ", ".join(names)

        rows = [
            ("total", "backdoor", join(self.backdoor), "", ""),
            ("total:iv", "iv", "", "", join(self.instruments)),
            ("total:frontdoor", "frontdoor", join(self.frontdoor), "", ""),
        ]
        if self.mediator_sets:
            outcome_set = sorted(set(self.backdoor).union(*self.mediator_sets.values()))
            first_set = sorted(set().union(*self.first_stage_sets.values()))
            rows.append(("direct", "mediation", join(outcome_set), join(first_set), ""))
            rows.append(("indirect", "mediation", join(outcome_set), join(first_set), ""))
            for m in self.mediator_sets:
                rows.append(
                    (
                        f"indirect:{m}",
                        "mediation",
                        join(self.mediator_sets[m]),
                        join(self.first_stage_sets[m]),
                        "",
                    )
                )
        return pd.DataFrame(
            [
                {
                    "estimand": name,
                    "method": method,
                    "identified": bool(self.identified.get(name, False)),
                    "adjustment_set": adj,
                    "first_stage_set": first,
                    "instruments": inst,
                }
                for name, method, adj, first, inst in rows
            ]
        )

    def _repr_html_(self) -> str:
        return self.summary().to_html(index=False)

    def __str__(self) -> str:
        where = f" (graph: {self.graph_source})" if self.graph_source else ""
        lines = [f"Identification of the effect of {self.treatment} on {self.outcome}{where}"]
        lines.append(f"latent nodes: {', '.join(self.latent) or 'none'}")
        status = "identified" if self.total_identified else "NOT identified by adjustment"
        lines.append(f"total effect: {status}")
        lines.append("")
        lines.append(self.summary().to_string(index=False))
        if self.notes:
            lines.append("")
            lines.append("notes:")
            lines.extend(f"  - {n}" for n in self.notes)
        if self.warnings:
            lines.append("")
            lines.append("warnings:")
            lines.extend(f"  - {w}" for w in self.warnings)
        lines.append("")
        lines.append("Estimand texts: .estimands[name]; table: .summary().")
        return "\n".join(lines)


# -- public functions ---------------------------------------------------------------------
def check_spec(graph: CausalGraph | str | Path, spec: Spec) -> list[str]:
    """Check a spec against the causal graph before any sampling.

    Parameters
    ----------
    graph : CausalGraph, str or pathlib.Path
        The mechanism DAG, or the path of its DOT file.
    spec : Spec
        The model specification.

    Returns
    -------
    list of str
        Warnings, in a fixed order: controls not in the graph (treated as exogenous),
        confounders the graph requires that the controls lack (for the total effect, and
        for each mediator's equations, i.e. sequential ignorability), unit-level latent
        nodes on an open back-door path that the spec's unit effects do not adjust for,
        effects the graph does not identify, and declared mediators that leave indirect
        paths uncovered.

    Raises
    ------
    GraphError
        If the treatment, outcome or a mediator is not a node; a spec column is marked
        latent; a control is a descendant of the treatment (a "bad control"); a mediator
        is not on a directed path treatment -> mediator -> outcome; one declared
        mediator is a descendant of another; a unit-level latent node that the unit
        effects adjust for is a descendant of the treatment or the outcome; or an
        instrument (``[variables].instrument``) is not a node, is a descendant of the
        treatment, has no directed path to it, has a directed path to the outcome that
        avoids it, or shares a common cause with the outcome that the controls leave open.

    Notes
    -----
    Unit-level latent nodes (``level="unit"``) count as adjusted for when
    ``[data].unit`` and ``[data].time`` are set and ``unit_effects`` is ``"within"`` or
    ``"fixed"``; only the spec is read, not the data.
    """
    if not isinstance(graph, CausalGraph):
        graph = load_graph(graph)
    return list(_analyse(graph, spec, observed=None).warnings)


def identify(
    graph: CausalGraph | str | Path, spec: Spec, data: pd.DataFrame | None = None
) -> Identification:
    """Identify the total, direct and path-specific indirect effects of the spec.

    Parameters
    ----------
    graph : CausalGraph, str or pathlib.Path
        The mechanism DAG, or the path of its DOT file.
    spec : Spec
        The model specification; its controls are preferred as the adjustment set.
    data : pandas.DataFrame or None, default None
        Only the column names are used, never the values: graph nodes that are not
        columns are treated as latent. With None, every node not marked
        ``observed="no"`` counts as observed. DoWhy 0.14 needs a DataFrame with the
        observed columns; it gets a two-row placeholder of zeros with those columns
        (identification reads no values). The caller's DataFrame is not touched.

    Returns
    -------
    Identification

    Raises
    ------
    GraphError
        As :func:`check_spec`.
    DataError
        If ``data`` lacks the treatment or the outcome column.
    """
    if not isinstance(graph, CausalGraph):
        graph = load_graph(graph)
    observed: set[str] | None = None
    extra_warnings: list[str] = []
    if data is not None:
        columns = {str(c) for c in data.columns}
        for role, col in (("treatment", spec.treatment), ("outcome", spec.outcome)):
            if col not in columns:
                raise DataError(
                    f"The {role} column '{col}' named in [variables].{role} is not in the "
                    f"data. Columns are: {', '.join(sorted(columns)[:20])}. Fix the name in "
                    "the spec or add the column."
                )
        observed = (set(graph.observed) & columns) | (set(spec.columns) & set(graph.nodes))
        unmeasured = sorted(set(graph.observed) - observed)
        if unmeasured:
            extra_warnings.append(
                f"Graph node(s) {_names(unmeasured)} are not columns of the data; they are "
                "treated as latent. Add the columns, or mark them observed=\"no\" in the "
                "DOT file to silence this."
            )
    a = _analyse(graph, spec, observed=observed)
    dw = _dowhy_identify(graph, spec.treatment, spec.outcome, a.observed)

    backdoor, total_ok = a.backdoor, a.backdoor_ok
    if not total_ok and dw["backdoor"] is not None:  # cross-check: trust a verified DoWhy set
        bd = backdoor_graph(graph.dag, spec.treatment)
        z = set(dw["backdoor"]) | set(a.unit_adjusted)
        if is_separated(bd, spec.treatment, spec.outcome, z):
            backdoor, total_ok = tuple(sorted(dw["backdoor"])), True
    instruments = tuple(sorted(set(a.instruments) | (set(dw["instruments"]) & a.observed)))
    frontdoor = tuple(sorted(dw["frontdoor"]))

    t, y = spec.treatment, spec.outcome
    est = _Estimands()
    identified: dict[str, bool] = {}
    estimands: dict[str, str] = {}
    estimands["total"] = est.adjustment("total", t, y, backdoor if total_ok else None)
    identified["total"] = total_ok
    estimands["total:iv"] = est.iv("total:iv", t, y, instruments)
    identified["total:iv"] = bool(instruments)
    estimands["total:frontdoor"] = est.frontdoor("total:frontdoor", t, y, frontdoor)
    identified["total:frontdoor"] = bool(frontdoor)
    mediators = list(spec.mediators)
    if mediators:
        for m in mediators:
            ok = a.first_ok[m] and a.second_ok[m]
            identified[f"indirect:{m}"] = ok
            estimands[f"indirect:{m}"] = est.path(
                f"indirect:{m}", t, m, y, a.first[m], a.second[m], ok
            )
        all_ok = all(identified[f"indirect:{m}"] for m in mediators)
        outcome_set = sorted(set(backdoor).union(*(a.second[m] for m in mediators)))
        identified["direct"] = total_ok and all_ok
        identified["indirect"] = total_ok and all_ok
        for name in ("direct", "indirect"):
            estimands[name] = est.mediation(
                name, t, y, mediators, a.first, outcome_set, total_ok and all_ok
            )
    latent = tuple(sorted(set(graph.nodes) - a.observed))
    return Identification(
        treatment=t,
        outcome=y,
        backdoor=backdoor if total_ok else (),
        mediator_sets={m: a.second[m] for m in mediators},
        first_stage_sets={m: a.first[m] for m in mediators},
        instruments=instruments,
        frontdoor=frontdoor,
        estimands=estimands,
        identified=identified,
        total_identified=total_ok or bool(frontdoor),
        latent=latent,
        warnings=tuple(extra_warnings) + a.warnings,
        unit_adjusted=a.unit_adjusted,
        notes=a.notes,
        graph_source=str(graph.source) if graph.source else None,
    )


# -- the analysis shared by check_spec and identify -----------------------------------------
@dataclass
class _Analysis:
    observed: set[str]
    backdoor: tuple[str, ...] = ()
    backdoor_ok: bool = False
    instruments: tuple[str, ...] = ()
    first: dict[str, tuple[str, ...]] = field(default_factory=dict)
    first_ok: dict[str, bool] = field(default_factory=dict)
    second: dict[str, tuple[str, ...]] = field(default_factory=dict)
    second_ok: dict[str, bool] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    unit_adjusted: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _unit_adjusted(graph: CausalGraph, spec: Spec) -> tuple[str, ...]:
    """Unit-level latent nodes the spec's unit effects adjust for (spec only, no data)."""
    if spec.unit is None or spec.time is None:
        return ()
    if spec.unit_effects not in ADJUSTING_UNIT_EFFECTS:
        return ()
    return graph.unit_level


def _analyse(graph: CausalGraph, spec: Spec, *, observed: set[str] | None) -> _Analysis:
    """Validate ``spec`` against ``graph`` (raising GraphError) and find adjustment sets."""
    dag = graph.dag
    where = f" {graph.source}" if graph.source else " the causal graph"
    t, y = spec.treatment, spec.outcome
    # (a) treatment, outcome, mediators must be nodes
    for role, col in (("treatment", t), ("outcome", y)):
        if col not in graph:
            raise GraphError(
                f"The {role} '{col}' ([variables].{role}) is not a node of{where}. Nodes are: "
                f"{', '.join(graph.nodes)}. Rename the node in the DOT file or fix the spec."
            )
    for m in spec.mediators:
        if m not in graph:
            raise GraphError(
                f"Mediator '{m}' ([variables].mediators) is not a node of{where}. Add it to the "
                f"DOT file with arrows {t} -> {m} -> {y}, or remove it from mediators."
            )
    for col in [t, y, *spec.mediators, *spec.controls, *spec.instrument]:
        if col in graph.latent:
            raise GraphError(
                f"'{col}' is named in the spec as a data column but is marked "
                f'observed="no" (latent) in{where}. Remove the observed="no" attribute, or '
                "take the column out of the spec."
            )
    desc_t = graph.descendants(t)
    # (b) bad controls
    for c in spec.controls:
        if c in graph and c in desc_t:
            path = list(graph.directed_path(t, c) or (t, c))
            to_y = graph.directed_path(c, y)
            if to_y:
                path += list(to_y[1:])
            fix = (
                "Remove it from controls, or list it under mediators if it is a mechanism."
                if to_y
                else f"Remove it from controls (it is no mediator: no directed path to {y})."
            )
            raise GraphError(
                f"Control '{c}' ([variables].controls) lies on or after a causal path from the "
                f"treatment in{where}: {' -> '.join(path)}. Adjusting for it blocks part of the "
                f"effect or opens collider bias. {fix}"
            )
    # (b') instruments: relevant (a directed path to the treatment), excluded (no path to
    # the outcome except through the treatment), independent (no open back-door path to
    # the outcome given the controls)
    _check_instruments(graph, spec, where)
    # (c) mediators on a directed path treatment -> m -> outcome
    for m in spec.mediators:
        if m not in desc_t:
            raise GraphError(
                f"Mediator '{m}' is not on a directed path {t} -> {m} -> {y} in{where}: there is "
                f"no directed path from {t} to {m}. Add the arrow {t} -> {m} to the graph, or "
                "remove it from mediators (list it under controls if it is a confounder)."
            )
        if y not in graph.descendants(m):
            raise GraphError(
                f"Mediator '{m}' is not on a directed path {t} -> {m} -> {y} in{where}: there is "
                f"no directed path from {m} to {y}. Add the arrow {m} -> {y} to the graph, or "
                "remove it from mediators."
            )
    # (d) mediators must be parallel
    for m1, m2 in itertools.permutations(spec.mediators, 2):
        if m2 in graph.descendants(m1):
            raise GraphError(
                f"Mediator '{m2}' is a descendant of mediator '{m1}' in{where} "
                f"({' -> '.join(graph.directed_path(m1, m2) or (m1, m2))}); declared mediators "
                "must be parallel. Remove the arrow between them in the graph, or keep only "
                "one of them in mediators."
            )

    # (e) unit-level nodes absorbed by unit effects must be time-invariant causes
    absorbed = set(_unit_adjusted(graph, spec))
    for u in sorted(absorbed):
        for role, col in (("treatment", t), ("outcome", y)):
            if u in graph.descendants(col):
                path = " -> ".join(graph.directed_path(col, u) or (col, u))
                raise GraphError(
                    f"Unit-level node '{u}' (level=\"unit\") is a descendant of the {role} "
                    f"'{col}' in{where}: {path}. A unit-level node is a time-invariant unit "
                    "characteristic, so nothing time-varying causes it, and the unit effects "
                    f"(unit_effects = \"{spec.unit_effects}\") would absorb part of the effect. "
                    f"Remove the arrow into '{u}', or drop level=\"unit\" from '{u}'."
                )

    obs = set(graph.observed) if observed is None else set(observed)
    obs |= set(spec.columns) & set(graph.nodes)
    out = _Analysis(observed=obs)
    out.unit_adjusted = tuple(sorted(absorbed))
    out.notes = tuple(
        f"{u}: unit-level, unobserved; adjusted for by unit effects "
        f"(unit_effects = {spec.unit_effects})"
        for u in out.unit_adjusted
    )
    unabsorbed = set(graph.unit_level) - absorbed
    warns: list[str] = []
    off_graph = [c for c in spec.controls if c not in graph]
    if off_graph:
        warns.append(
            f"Control(s) {_names(off_graph)} are not nodes of{where}; they are treated as "
            f"exogenous (no arrows in or out). Add them to the DOT file to state how they "
            f"relate to {t} and {y}."
        )
    after_y = [c for c in spec.controls if c in graph and c in graph.descendants(y)]
    if after_y:
        warns.append(
            f"Control(s) {_names(after_y)} are descendants of the outcome '{y}' in{where}; "
            "adjusting for a consequence of the outcome can bias every effect. Remove them "
            "from controls."
        )
    if y not in desc_t:
        warns.append(
            f"There is no directed path from {t} to {y} in{where}: the graph asserts the "
            f"effect is zero. Add the arrows through which {t} acts on {y}."
        )

    ctl = {c for c in spec.controls if c in graph}
    pre = obs - desc_t - graph.descendants(y) - {t, y}  # observed, pre-treatment

    # total effect
    bd_t = backdoor_graph(dag, t)
    res = _prefer(bd_t, t, y, given=absorbed, controls=ctl, candidates=pre)
    out.backdoor, out.backdoor_ok = res.chosen, res.ok
    what = f"the effect of {t} on {y}"
    warns += _gap_warnings(res, bd_t, t, y, absorbed, what, where)
    warns += _unit_level_warnings(
        res, bd_t, t, y, absorbed, unabsorbed, ctl, pre, what, where, spec
    )
    out.instruments = tuple(
        z
        for z in sorted(graph.ancestors(t) & obs)
        if z not in desc_t and is_separated(bd_t, z, y, absorbed)
    )
    if not res.ok:
        hint = f" Instruments in the graph: {_names(out.instruments)}." if out.instruments else ""
        warns.append(
            f"No set of observed nodes blocks every back-door path from {t} to {y} in{where} "
            f"(a latent confounder); the total effect is not identified by adjustment.{hint} "
            "Measure the confounder, or add an instrument to the graph."
        )

    # each mediator: first stage (t -> m) and second stage (m -> y given t)
    for m in spec.mediators:
        r1 = _prefer(bd_t, t, m, given=absorbed, controls=ctl, candidates=pre)
        bd_m = backdoor_graph(dag, m)
        given2 = {t} | absorbed
        r2 = _prefer(bd_m, m, y, given=given2, controls=ctl, candidates=pre)
        out.first[m], out.first_ok[m] = r1.chosen, r1.ok
        out.second[m], out.second_ok[m] = r2.chosen, r2.ok
        what1 = f"the mediator equation {t} -> {m}"
        what2 = f"the outcome equation {m} -> {y} given {t} (sequential ignorability)"
        warns += _gap_warnings(r1, bd_t, t, m, absorbed, what1, where)
        warns += _unit_level_warnings(
            r1, bd_t, t, m, absorbed, unabsorbed, ctl, pre, what1, where, spec
        )
        warns += _gap_warnings(r2, bd_m, m, y, given2, what2, where)
        warns += _unit_level_warnings(
            r2, bd_m, m, y, given2, unabsorbed, ctl, pre, what2, where, spec
        )
        if not (r1.ok and r2.ok):
            stage = f"{t} -> {m}" if not r1.ok else f"{m} -> {y}"
            warns.append(
                f"The indirect effect through '{m}' is not identified in{where}: no set of "
                f"observed pre-treatment nodes blocks the back-door paths of {stage}. Measure "
                "the confounder, or drop the mediator."
            )
    if spec.mediators:
        rest = nx.DiGraph(dag)
        if rest.has_edge(t, y):
            rest.remove_edge(t, y)
        rest.remove_nodes_from(spec.mediators)
        if y in nx.descendants(rest, t):
            path = CausalGraph(rest.edges, nodes=rest.nodes).directed_path(t, y)
            warns.append(
                f"The declared mediators do not intercept every indirect path from {t} to {y} "
                f"in{where} (e.g. {' -> '.join(path or ())}); the 'direct' effect includes "
                "such paths. Declare their mediators too if you want them separated."
            )
    out.warnings = tuple(dict.fromkeys(warns))
    return out


def _check_instruments(graph: CausalGraph, spec: Spec, where: str) -> None:
    """Raise GraphError for an instrument of the spec that the graph says is not valid.

    Instrument ``z`` of treatment ``t`` and outcome ``y`` given the controls ``W`` (and
    the unit-level nodes the unit effects adjust for): ``z`` is a node, not a descendant
    of ``t``; ``t`` is a descendant of ``z`` (relevance); no directed path from ``z`` to
    ``y`` avoids ``t`` (exclusion); ``z`` and ``y`` are d-separated by ``W`` once the
    arrows out of ``t`` are removed (independence: no unblocked common cause).
    """
    t, y = spec.treatment, spec.outcome
    given = {c for c in spec.controls if c in graph} | set(_unit_adjusted(graph, spec))
    without_t = nx.DiGraph(graph.dag)
    without_t.remove_node(t)
    bd_t = backdoor_graph(graph.dag, t)
    for z in spec.instrument:
        if z not in graph:
            raise GraphError(
                f"Instrument '{z}' ([variables].instrument) is not a node of{where}, so its "
                f"validity cannot be checked. Add it to the DOT file with an arrow {z} -> {t} "
                f"and no path to {y} except through {t}, or remove it from instrument."
            )
        if z in graph.descendants(t):
            raise GraphError(
                f"Instrument '{z}' is a descendant of the treatment '{t}' in{where} "
                f"({' -> '.join(graph.directed_path(t, z) or (t, z))}); an instrument must be "
                "determined before the treatment. Remove it from [variables].instrument."
            )
        if t not in graph.descendants(z):
            raise GraphError(
                f"Instrument '{z}' has no directed path to the treatment '{t}' in{where}, so "
                f"it cannot move {t} (relevance fails). Add the arrow {z} -> {t} to the graph "
                "if it belongs there, or remove it from [variables].instrument."
            )
        if y in nx.descendants(without_t, z):
            path = CausalGraph(without_t.edges, nodes=without_t.nodes).directed_path(z, y)
            raise GraphError(
                f"Instrument '{z}' has a path to the outcome '{y}' not through the treatment "
                f"'{t}' in{where}: {' -> '.join(path or (z, y))}. The exclusion restriction "
                "fails, so the IV estimate would mix that path into the effect. Remove "
                f"'{z}' from [variables].instrument, or fix the graph if the path is wrong."
            )
        if not is_separated(bd_t, z, y, given):
            path = open_path(bd_t, z, y, given, through=z) or f"{z} ... {y}"
            names = ", ".join(sorted(given)) or "no controls"
            raise GraphError(
                f"Instrument '{z}' shares an unblocked common cause with the outcome '{y}' "
                f"in{where} given the controls ({names}): {path}. The instrument is not "
                "independent of the outcome's other causes. Add the common cause to "
                f"[variables].controls if it is measured, or remove '{z}' from instrument."
            )


# -- adjustment-set search ------------------------------------------------------------------
@dataclass(frozen=True)
class _Search:
    chosen: tuple[str, ...]  # the set to use ((), when not ok)
    ok: bool
    missing: tuple[str, ...]  # nodes the graph needs that the controls lack
    blocking: tuple[str, ...]  # controls that make every superset invalid


def _prefer(
    g: nx.DiGraph, s: str, t: str, *, given: set[str], controls: set[str], candidates: set[str]
) -> _Search:
    """A valid set containing the controls if one exists, else the smallest valid set."""
    with_ctl = smallest_separator(g, s, t, candidates=candidates, base=controls, given=given)
    if with_ctl is not None:
        return _Search(with_ctl, True, tuple(sorted(set(with_ctl) - set(controls))), ())
    bare = smallest_separator(g, s, t, candidates=candidates, given=given)
    blocking = tuple(
        c
        for c in sorted(controls)
        if smallest_separator(g, s, t, candidates=candidates, base={c}, given=given) is None
    )
    if bare is None:
        return _Search((), False, (), ())
    return _Search(bare, True, tuple(sorted(set(bare) - set(controls))), blocking)


def _gap_warnings(
    res: _Search,
    g: nx.DiGraph,
    s: str,
    t: str,
    given: set[str],
    what: str,
    where: str,
) -> list[str]:
    """Warnings for nodes the graph needs that the controls lack, and for harmful controls."""
    out = []
    if res.missing:
        parts = []
        for c in res.missing:
            path = open_path(g, s, t, (set(res.chosen) - {c}) | given, through=c)
            parts.append(f"'{c}' ({path})" if path else f"'{c}'")
        them = "it" if len(parts) == 1 else "them"
        out.append(
            f"In{where}, {what} needs adjustment for {', '.join(parts)}, which "
            f"[variables].controls lacks. Add {them} to controls."
        )
    if res.blocking:
        out.append(
            f"Control(s) {_names(res.blocking)} open a non-causal path in {what} that no "
            f"observed set blocks (e.g. a collider); the analysis adjusts for "
            f"{_names(res.chosen) or 'nothing'} instead. Remove them from controls."
        )
    return out


def _unit_level_warnings(
    res: _Search,
    g: nx.DiGraph,
    s: str,
    t: str,
    given: set[str],
    units: set[str],
    controls: set[str],
    candidates: set[str],
    what: str,
    where: str,
    spec: Spec,
) -> list[str]:
    """Warn of unit-level latent nodes on an open back-door path, not adjusted for.

    ``units`` are the graph's unit-level nodes that the spec's unit effects leave alone;
    nothing is said when ``res`` found a valid set anyway (observed nodes block them).
    """
    if res.ok or not units:
        return []
    # the set that would serve if the unit effects adjusted for them
    alt = _prefer(g, s, t, given=given | units, controls=controls, candidates=candidates)
    z = set(alt.chosen) | given
    parts = []
    for u in sorted(units):
        path = open_path(g, s, t, z, through=u)
        if path:
            parts.append(f"'{u}' ({path})")
    if not parts:
        return []
    node, it = ("node", "it") if len(parts) == 1 else ("nodes", "them")
    if spec.unit is None or spec.time is None:
        why = (
            "unit effects adjust for a unit-level node only when [data].unit and [data].time "
            "are set"
        )
        fix = 'Set [data].unit and [data].time, and [model].unit_effects = "within"'
    elif spec.unit_effects == "random":
        why = (
            f'[model].unit_effects = "random" does not adjust for {it} (random unit effects '
            "assume the unit effects are independent of the regressors, which this path "
            "contradicts)"
        )
        fix = 'Set [model].unit_effects = "within" (or "fixed")'
    else:
        why = f'[model].unit_effects = "{spec.unit_effects}" has no unit effects to adjust for {it}'
        fix = 'Set [model].unit_effects = "within" (or "fixed")'
    rest = "" if alt.ok else " (other latent confounding remains even then)"
    return [
        f"In{where}, {what} has an open back-door path through the unit-level latent {node} "
        f"{', '.join(parts)}, and {why}. {fix} so that unit effects adjust for {it}{rest}."
    ]


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


# -- DoWhy ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_dowhy() -> Iterator[None]:
    """Silence DoWhy's log records and warnings (our tests turn warnings into errors)."""
    logger = logging.getLogger("dowhy")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _dowhy_identify(
    graph: CausalGraph, treatment: str, outcome: str, observed: set[str]
) -> dict[str, Any]:
    """Run DoWhy's identify_effect for the total effect; return its sets (sorted)."""
    with _quiet_dowhy():
        import numpy as np
        import pandas as pd
        from dowhy import CausalModel

        cols = sorted(observed | {treatment, outcome})
        placeholder = pd.DataFrame(np.zeros((2, len(cols))), columns=cols)
        # a networkx graph, not a string: DoWhy sniffs strings with regexes such as
        # ".*\.txt" that a node name could match
        model = CausalModel(
            data=placeholder,
            treatment=treatment,
            outcome=outcome,
            graph=graph.to_networkx(),
        )
        est = model.identify_effect(proceed_when_unidentifiable=True)
    if getattr(est, "no_directed_path", False):
        return {"backdoor": None, "instruments": [], "frontdoor": []}
    bd = (est.backdoor_variables or {}).get("backdoor")
    return {
        "backdoor": None if bd is None else sorted(bd),
        "instruments": sorted(est.instrumental_variables or []),
        "frontdoor": sorted(est.frontdoor_variables or []),
    }


class _Estimands:
    """Estimand texts in DoWhy's format, built from our (sorted) sets."""

    def __init__(self) -> None:
        with _quiet_dowhy():
            import sympy as sp
            import sympy.stats as spstats
            from dowhy.causal_identifier import auto_identifier as ai
        self.sp, self.spstats, self.ai = sp, spstats, ai

    def _render(self, name: str, est: dict[str, Any] | None) -> str:
        s = f"Estimand name: {name}\n"
        if est is None:
            return s + "No such variable(s) found!\n"
        expr = self.sp.pretty(est["estimand"], use_unicode=True, wrap_line=False)
        s += f"Estimand expression:\n{expr}\n"
        for j, (key, text) in enumerate(est["assumptions"].items(), start=1):
            s += f"Estimand assumption {j}, {key}: {text}\n"
        return s

    def adjustment(self, name: str, t: str, y: str, z: tuple[str, ...] | None) -> str:
        if z is None:
            return self._render(name, None)
        return self._render(name, self.ai.construct_adjustment_estimand([t], [y], list(z)))

    def iv(self, name: str, t: str, y: str, inst: tuple[str, ...]) -> str:
        if not inst:
            return self._render(name, None)
        return self._render(name, self.ai.construct_iv_estimand([t], [y], list(inst)))

    def frontdoor(self, name: str, t: str, y: str, fd: tuple[str, ...]) -> str:
        if not fd:
            return self._render(name, None)
        return self._render(name, self.ai.construct_frontdoor_estimand([t], [y], list(fd)))

    def _stages(
        self, t: str, m: str, y: str, first: tuple[str, ...], second: tuple[str, ...]
    ) -> tuple[Any, Any]:
        """d E[m | t, first] / dt  and  d E[y | m, t, second] / dm  as sympy expressions."""
        sp, spstats = self.sp, self.spstats
        mu, sigma = sp.Symbol("mu"), sp.Symbol("sigma", positive=True)
        m_given = m + "|" + ",".join([t, *first])
        y_given = y + "|" + ",".join([m, t, *second])
        stage1 = sp.Derivative(
            spstats.Expectation(spstats.Normal(m_given, mu, sigma)), sp.Symbol(t)
        )
        stage2 = sp.Derivative(
            spstats.Expectation(spstats.Normal(y_given, mu, sigma)), sp.Symbol(m)
        )
        return stage1, stage2

    def path(
        self,
        name: str,
        t: str,
        m: str,
        y: str,
        first: tuple[str, ...],
        second: tuple[str, ...],
        ok: bool,
    ) -> str:
        """Path-specific indirect effect ``t -> m -> y`` (product of the two stages)."""
        if not ok:
            return self._render(name, None)
        stage1, stage2 = self._stages(t, m, y, first, second)
        arrow = "\N{RIGHTWARDS ARROW}"
        f1, f2 = ",".join([t, *first]), ",".join([m, t, *second])
        assumptions = {
            "Path": f"{t}{arrow}{m}{arrow}{y}; declared mediators are parallel",
            "First-stage-unconfoundedness": (
                f"If U{arrow}{{{t}}} and U{arrow}{{{m}}} then P({m}|{f1},U) = P({m}|{f1})"
            ),
            "Second-stage-unconfoundedness": (
                f"If U{arrow}{{{m}}} and U{arrow}{y} then P({y}|{f2},U) = P({y}|{f2})"
            ),
            "No-treatment-induced-confounding": f"no descendant of {t} confounds {m}{arrow}{y}",
        }
        return self._render(name, {"estimand": stage1 * stage2, "assumptions": assumptions})

    def mediation(
        self,
        name: str,
        t: str,
        y: str,
        mediators: list[str],
        first: dict[str, tuple[str, ...]],
        outcome_set: list[str],
        ok: bool,
    ) -> str:
        """``direct`` (NDE) or joint ``indirect`` (NIE) over the declared parallel mediators.

        DoWhy's own ``construct_mediation_estimand`` is not used: it assumes the mediators
        intercept every indirect path and mangles the outcome name in its assumption text.
        """
        if not ok:
            return self._render(name, None)
        sp, spstats = self.sp, self.spstats
        arrow = "\N{RIGHTWARDS ARROW}"
        ms = ",".join(mediators)
        given = ",".join([*mediators, t, *outcome_set])
        if name == "direct":
            mu, sigma = sp.Symbol("mu"), sp.Symbol("sigma", positive=True)
            expr = sp.Derivative(
                spstats.Expectation(spstats.Normal(f"{y}|{given}", mu, sigma)), sp.Symbol(t)
            )
        else:
            expr = sp.Add(
                *(sp.Mul(*self._stages(t, m, y, first[m], tuple(outcome_set))) for m in mediators)
            )
        f1 = ",".join([t, *sorted(set().union(*first.values()))])
        assumptions = {
            "Mediation": (
                f"{ms} are parallel mediators; paths from {t} to {y} through no declared "
                "mediator count as direct"
            ),
            "First-stage-unconfoundedness": (
                f"If U{arrow}{{{t}}} and U{arrow}{{{ms}}} then P({ms}|{f1},U) = P({ms}|{f1})"
            ),
            "Second-stage-unconfoundedness": (
                f"If U{arrow}{{{ms}}} and U{arrow}{y} then P({y}|{given},U) = P({y}|{given})"
            ),
            "No-treatment-induced-confounding": (
                f"no descendant of {t} confounds a mediator{arrow}{y} relation"
            ),
        }
        return self._render(name, {"estimand": expr, "assumptions": assumptions})
