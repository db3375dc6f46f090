"""The declarative model specification (TOML), parsed and validated before any sampling.

The file format is a contract (DESIGN.md section 4.1)::

    [data]
    unit  = "firm_id"     # row entity; optional
    group = "city_id"     # level-2 grouping for partial pooling; optional
    time  = "year"        # adds time effects; optional

    [variables]
    outcome    = "resilience"
    treatment  = "va"
    controls   = ["size_ln", "ownership"]
    mediators  = ["m_cost", "m_speed"]      # optional
    negative_control = "placebo_outcome"   # optional: an outcome the treatment cannot affect
    moderators = ["ownership"]             # optional: categorical columns; effects by level
    instrument = "phone_x_net"             # optional; string or list: Bayesian IV

    [model]
    family        = "gaussian"   # "gaussian" | "bernoulli"
    varying_slope = false
    varying_mediator = "m_cost"      # optional: this mediator's effect on the outcome varies
    unit_effects  = "within"     # repeated units: "within" | "fixed" | "random" | "none"
    group_time_effects = true    # optional; default: on when the treatment varies by group-time
    group_means   = false        # optional: group (city) means of the regressors (Mundlak)
    graph         = "mechanisms.dot"   # optional, relative to the spec file

    [design]                     # optional: the shock (event-study) design
    shock_year = 2018            # treatment measured before it, x event-time indicators
    shock_baseline = "year_before"   # or "pre_mean": the mean over every pre-shock year
    pretrend_band = 0.05         # optional: |lead| below this counts as no pre-trend

Unknown keys are errors that name the key and list the valid ones.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vagg_bayes.errors import SpecError

FAMILIES = ("gaussian", "bernoulli")
UNIT_EFFECTS = ("within", "fixed", "random", "none")

_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "data": {"unit": str, "group": str, "time": str},
    "variables": {"outcome": str, "treatment": str, "controls": list, "mediators": list,
                  "negative_control": str, "moderators": list, "instrument": list},
    "model": {"family": str, "varying_slope": bool, "varying_mediator": str,
              "unit_effects": str, "group_time_effects": bool, "group_means": bool,
              "graph": str},
    "design": {"shock_year": int, "shock_baseline": str, "pretrend_band": (int, float)},
}
_REQUIRED = {"variables": ("outcome", "treatment")}


@dataclass(frozen=True)
class Spec:
    """A validated model specification.

    Parameters
    ----------
    outcome, treatment : str
        Column names of the outcome and the treatment.
    controls : tuple of str, default ()
        Control columns; numeric, or categorical (strings become indicators).
    mediators : tuple of str, default ()
        Parallel mediators.
    unit, group, time : str or None, default None
        Row entity, level-2 grouping (partial pooling) and time columns.
    family : {"gaussian", "bernoulli"}, default "gaussian"
        Outcome likelihood.
    varying_slope : bool, default False
        Whether the treatment effect varies by group (needs ``group``): the treatment's
        slope in every equation (with mediators: the treatment-to-mediator paths
        ``a_kj`` and, unless ``varying_mediator`` is set, the direct effect ``c_j``).
    varying_mediator : str or None, default None
        A mediator whose effect on the outcome (``b_kj``) varies by group (needs
        ``group``). One varying slope per equation: the outcome equation's slope of
        this mediator varies, its direct effect is then a common slope. The average
        indirect effect of the mediator is the row-weighted mean of ``a_kj b_kj``, so it
        includes the covariance of the two paths across groups.
    unit_effects : {"within", "fixed", "random", "none"}, default "within"
        Unit (firm) effects in every equation when the data have repeated units
        (``unit`` and ``time`` set and some unit seen more than once); ignored otherwise.
        ``"within"``: unit random intercepts nested in the group effects plus the unit
        means of every time-varying regressor (Mundlak's correlated random effects):
        slopes of time-varying regressors are identified within units, time-invariant
        controls are kept (as between-unit effects), new units can be predicted.
        ``"fixed"``: the within transformation (flat prior on unit intercepts, the
        limit of an infinite unit SD): two-way fixed effects; time-invariant regressors
        are absorbed and dropped. ``"random"``: unit random intercepts assumed
        independent of the regressors (slopes mix within and between variation).
        ``"none"``: no unit effects.
    group_time_effects : bool or None, default None
        A random effect for every (group, time) cell, nested in its group (local shocks
        shared by the units of one cell). None: on when the treatment varies at the
        group-time level (constant within cells, varying over time), off otherwise.
    group_means : bool, default False
        Mundlak at the group (city) level: every equation with a group gets the group
        mean (``group_mean(<term>)``) of each regressor that varies within groups, so a
        regressor's coefficient is its within-group slope (as group fixed effects give),
        its sum with the mean's coefficient the between-group slope, and the mean's
        coefficient their difference (``within_between.csv``, ``level = "group"``). For
        a confounder at the group level (an unobserved, persistent city quality). Not
        added where unit means already make a slope within-unit (the unit means absorb
        what is constant in a city), nor under ``unit_effects = "fixed"`` (the unit
        effects absorb the group means), nor for a regressor constant within groups
        (its group mean is itself); see :func:`vagg_bayes.bayes.design.build_design`.
    graph : pathlib.Path or None, default None
        DOT file of the causal graph, resolved relative to the spec file.
    negative_control : str or None, default None
        A negative-control outcome: a column the treatment cannot affect but that shares
        the outcome's confounders. Not used by the estimate; the refutation test
        ``negative_control_outcome`` fits the spec to it in place of the outcome (its
        effects must cover zero).
    moderators : tuple of str, default ()
        Categorical columns whose levels may change the treatment's effect: every
        equation gets the moderator's indicators and their products with the treatment
        (``<treatment>:<moderator>[<level>]``), and ``effects.csv`` gains the effect at
        each level and each level's contrast with the reference (first sorted) level.
        A moderator may also be a control; it may not play another role.
    instrument : tuple of str, default ()
        Instruments of the treatment (TOML: a string or a list): the treatment's effect is
        estimated by Bayesian instrumental variables (:mod:`vagg_bayes.bayes.iv`): a first
        stage (treatment on the instruments and controls) and the outcome equation fitted
        jointly with correlated errors. Gaussian outcomes only, without mediators,
        moderators or a varying slope.
    shock_year : int or None, default None
        The shock (event-study) design (:mod:`vagg_bayes.designs.shock`; needs
        ``unit`` and ``time``, a Gaussian outcome, no mediators, moderators, varying
        slope or instrument): each unit's treatment measured before this year, times an
        indicator of every year relative to it (the year before is the reference),
        with the unit effects of ``unit_effects`` and year effects. ``effects.csv``
        gets ``total`` (the mean of the post-shock event-time effects) and
        ``event[<k>]`` for every event time ``k``.
    shock_baseline : {"year_before", "pre_mean"}, default "year_before"
        The pre-shock treatment: its value in the year before the shock, or its mean
        over every year before the shock.
    pretrend_band : float or None, default None
        Leads (event times before the reference) within +-this band count as no
        pre-trend in ``P(all leads in band)``; None: a tenth of the outcome's SD per SD
        of the pre-shock treatment (a lead that moves the outcome by a tenth of its SD
        for one SD more of exposure).
    source : pathlib.Path or None, default None
        The file the spec was read from (used in messages only).
    """

    outcome: str
    treatment: str
    controls: tuple[str, ...] = ()
    mediators: tuple[str, ...] = ()
    unit: str | None = None
    group: str | None = None
    time: str | None = None
    family: str = "gaussian"
    varying_slope: bool = False
    varying_mediator: str | None = None
    unit_effects: str = "within"
    group_time_effects: bool | None = None
    group_means: bool = False
    graph: Path | None = None
    negative_control: str | None = None
    moderators: tuple[str, ...] = ()
    instrument: tuple[str, ...] = ()
    shock_year: int | None = None
    shock_baseline: str = "year_before"
    pretrend_band: float | None = None
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        _check_names(self, where)
        _check_design(self, where)
        if self.family not in FAMILIES:
            raise SpecError(
                f"[model].family{where} must be one of {', '.join(FAMILIES)}; "
                f"got '{self.family}'. Set family = \"gaussian\" or \"bernoulli\"."
            )
        if self.unit_effects not in UNIT_EFFECTS:
            raise SpecError(
                f"[model].unit_effects{where} must be one of {', '.join(UNIT_EFFECTS)}; "
                f"got '{self.unit_effects}'. \"within\" (the default) identifies slopes "
                "within units with unit random effects and unit means (Mundlak); see README."
            )
        if self.group_time_effects and (self.group is None or self.time is None):
            raise SpecError(
                f"[model].group_time_effects = true{where} needs [data].group and "
                "[data].time (the cells are group-time pairs); set both or remove the key."
            )
        if self.group_means and self.group is None:
            raise SpecError(
                f"[model].group_means = true{where} needs [data].group (the means are "
                "group means of the regressors); set it or remove the key."
            )
        if self.group_means and self.instrument:
            raise SpecError(
                f"[model].group_means = true{where} cannot be combined with "
                "[variables].instrument yet (the IV model has its own group mean of the "
                "first-stage residual). Remove one of the two keys."
            )
        if self.family == "bernoulli" and self.unit_effects in ("fixed", "random"):
            raise SpecError(
                f"[model].unit_effects = \"{self.unit_effects}\"{where} is not available for "
                "family = \"bernoulli\" (a logit has no exact within transformation). Use "
                "\"within\" (unit means of the time-varying regressors: correlated random "
                "effects, average partial effects identified) or \"none\"."
            )
        if self.varying_slope and self.group is None:
            raise SpecError(
                f"[model].varying_slope = true{where} needs a grouping column; "
                "set [data].group (e.g. group = \"city_id\") or set varying_slope = false."
            )
        if self.varying_mediator is not None:
            if self.varying_mediator not in self.mediators:
                listed = ", ".join(self.mediators) or "none"
                raise SpecError(
                    f"[model].varying_mediator = \"{self.varying_mediator}\"{where} is not one "
                    f"of [variables].mediators (listed: {listed}). Name one of the mediators "
                    "or remove varying_mediator."
                )
            if self.group is None:
                raise SpecError(
                    f"[model].varying_mediator{where} needs a grouping column; set "
                    "[data].group (e.g. group = \"city_id\") or remove varying_mediator."
                )
        roles: dict[str, list[str]] = {}
        for role, cols in (
            ("outcome", [self.outcome]),
            ("treatment", [self.treatment]),
            ("controls", list(self.controls)),
            ("mediators", list(self.mediators)),
            ("unit", [self.unit] if self.unit else []),
            ("group", [self.group] if self.group else []),
            ("time", [self.time] if self.time else []),
            ("negative_control", [self.negative_control] if self.negative_control else []),
            ("moderators", list(self.moderators)),
            ("instrument", list(self.instrument)),
        ):
            for col in cols:
                roles.setdefault(col, []).append(role)
        for col, rs in roles.items():
            if {"controls", "mediators"} <= set(rs):
                raise SpecError(
                    f"Column '{col}'{where} is listed both as a mediator and as a control. "
                    "A mediator lies on the causal path from the treatment to the outcome; "
                    "controlling for it blocks the very indirect effect being measured (and "
                    "can open collider bias), so the total and direct effects would be wrong. "
                    f"Remove '{col}' from [variables].controls."
                )
            if "moderators" in rs and not set(rs) <= {"moderators", "controls"}:
                others = [r for r in rs if r not in ("moderators", "controls")]
                raise SpecError(
                    f"Column '{col}'{where} is listed in [variables].moderators and as "
                    f"{', '.join(others)}. A moderator is a categorical column whose levels "
                    "may change the treatment's effect (it may also be a control); it cannot "
                    "be the outcome, the treatment, a mediator or the unit, group or time "
                    f"column. Remove '{col}' from [variables].moderators."
                )
            if rs.count("moderators") > 1:
                raise SpecError(
                    f"Column '{col}'{where} is listed more than once in "
                    "[variables].moderators; list each moderator once."
                )
            if len(rs) > 1 and not (set(rs) <= {"unit", "group"}
                                    or set(rs) == {"moderators", "controls"}):
                raise SpecError(
                    f"Column '{col}'{where} is named in more than one role ({', '.join(rs)}); "
                    "each column may play one role only. Remove it from all but one."
                )
        if self.instrument:
            _check_instrument(self, where)

    @property
    def columns(self) -> list[str]:
        """Every data column the spec names, in a stable order, without repeats."""
        cols = [self.outcome, self.treatment, *self.controls, *self.mediators,
                *self.moderators, *self.instrument]
        cols += [c for c in (self.unit, self.group, self.time) if c]
        return list(dict.fromkeys(cols))

    def with_(self, **changes: Any) -> Spec:
        """Return a copy with some fields changed (the spec itself is immutable)."""
        values = {**self.__dict__, **changes}
        return Spec(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, as recorded in ``manifest.json``."""
        d = asdict(self)
        d["controls"] = list(self.controls)
        d["mediators"] = list(self.mediators)
        d["moderators"] = list(self.moderators)
        d["instrument"] = list(self.instrument)
        d["graph"] = str(self.graph) if self.graph else None
        d["source"] = str(self.source) if self.source else None
        return d


def _check_names(spec: Spec, where: str) -> None:
    """Check that every column name of the spec is a non-empty string.

    An empty name matches no CSV header and would silently switch a role off.
    """
    named = [("[variables].outcome", spec.outcome), ("[variables].treatment", spec.treatment),
             *(("[variables].controls", c) for c in spec.controls),
             *(("[variables].mediators", c) for c in spec.mediators),
             *(("[variables].instrument", c) for c in spec.instrument),
             ("[data].unit", spec.unit), ("[data].group", spec.group),
             ("[data].time", spec.time)]
    for k, (key, name) in enumerate(named):
        if name is None and k >= 2:  # optional roles may be absent
            continue
        if not isinstance(name, str) or not name.strip():
            raise SpecError(
                f"{key}{where} is {name!r}, not a column name. Write the column's name "
                "(e.g. \"city_id\"), or remove the key if the role is not used."
            )


def _check_instrument(spec: Spec, where: str) -> None:
    """What an instrumental-variables spec cannot combine with (yet)."""
    named = ", ".join(spec.instrument)
    if spec.family != "gaussian":
        raise SpecError(
            f"[variables].instrument ({named}){where} is set with family = "
            f"\"{spec.family}\"; the Bayesian IV model is Gaussian-only for now (a "
            "bivariate normal first stage and outcome). Set family = \"gaussian\" (a linear "
            "probability model for a 0/1 outcome) or remove the instrument."
        )
    unsupported = [(key, bool(value)) for key, value in (
        ("[variables].mediators", spec.mediators),
        ("[variables].moderators", spec.moderators),
        ("[model].varying_slope", spec.varying_slope),
        ("[model].varying_mediator", spec.varying_mediator),
    )]
    for key, used in unsupported:
        if used:
            raise SpecError(
                f"{key}{where} cannot be combined with [variables].instrument ({named}) yet: "
                "the IV model estimates the total effect of the treatment with a common "
                f"slope. Remove {key}, or remove the instrument and fit the mechanisms under "
                "selection on observables."
            )


def _type_name(expected: type | tuple[type, ...]) -> str:
    """``int``, or ``int or float`` for a tuple of types (in messages)."""
    if isinstance(expected, tuple):
        return " or ".join(t.__name__ for t in expected)
    return expected.__name__


SHOCK_BASELINES = ("year_before", "pre_mean")


def _check_design(spec: Spec, where: str) -> None:
    """Check the ``[design]`` keys (the shock design) against the rest of the spec."""
    if spec.shock_year is None:
        return
    if isinstance(spec.shock_year, bool) or not isinstance(spec.shock_year, int):
        raise SpecError(f"[design].shock_year{where} must be a year (an integer such as "
                        f"2018); got {spec.shock_year!r}.")
    if spec.shock_baseline not in SHOCK_BASELINES:
        raise SpecError(
            f"[design].shock_baseline{where} must be one of {', '.join(SHOCK_BASELINES)}; "
            f"got {spec.shock_baseline!r}. \"year_before\" measures the treatment in the "
            "year before the shock, \"pre_mean\" averages it over the pre-shock years.")
    band = spec.pretrend_band
    if band is not None and (isinstance(band, bool) or not isinstance(band, int | float)
                             or not band > 0 or band == float("inf")):
        raise SpecError(f"[design].pretrend_band{where} must be a positive number in the "
                        f"outcome's units (e.g. 0.05); got {band!r}.")
    missing = [key for key, value in (("[data].time", spec.time), ("[data].unit", spec.unit))
               if not value]
    if missing:
        raise SpecError(
            f"[design].shock_year (or --shock-year) = {spec.shock_year}{where} needs "
            f"{' and '.join(missing)}: "
            "the shock design measures each unit's treatment before the shock and follows "
            "it year by year. Name the unit (firm) and year columns under [data], or remove "
            "[design].shock_year.")
    unsupported = [name for name, on in (
        ("[variables].mediators", spec.mediators), ("[variables].moderators", spec.moderators),
        ("[variables].instrument", getattr(spec, "instrument", ())),
        ("[model].varying_slope = true", spec.varying_slope),
        ("[model].varying_mediator", spec.varying_mediator),
        ("[model].family = \"bernoulli\"", spec.family == "bernoulli")) if on]
    if unsupported:
        raise SpecError(
            f"[design].shock_year{where} cannot be combined with {', '.join(unsupported)} "
            "yet: the shock design fits one Gaussian outcome equation on the event-time "
            "terms. Remove those keys, or remove [design].shock_year for the usual design.")


def parse_spec(doc: dict[str, Any], *, source: Path | None = None) -> Spec:
    """Validate a parsed TOML document and return a :class:`Spec`.

    Raises
    ------
    SpecError
        On unknown sections or keys, wrong types, or missing required keys.
    """
    where = f" in {source}" if source else ""
    unknown_sections = sorted(set(doc) - set(_SCHEMA))
    if unknown_sections:
        raise SpecError(
            f"Unknown section [{unknown_sections[0]}]{where}. Valid sections are: "
            f"{', '.join('[' + s + ']' for s in _SCHEMA)}. Rename or remove it."
        )
    flat: dict[str, Any] = {}
    for section, keys in _SCHEMA.items():
        body = doc.get(section, {})
        if not isinstance(body, dict):
            raise SpecError(f"[{section}]{where} must be a table of keys; got {body!r}.")
        for key, value in body.items():
            if key not in keys:
                raise SpecError(
                    f"Unknown key '{key}' in [{section}]{where}. Valid keys of [{section}] are: "
                    f"{', '.join(keys)}. Fix the spelling or remove the key."
                )
            expected = keys[key]
            if expected is list:
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise SpecError(
                        f"[{section}].{key}{where} must be a list of column names, "
                        f"e.g. {key} = [\"a\", \"b\"]; got {value!r}."
                    )
                value = tuple(value)
            elif not isinstance(value, expected):
                raise SpecError(
                    f"[{section}].{key}{where} must be a {_type_name(expected)}; got {value!r} "
                    f"({type(value).__name__})."
                )
            flat[key] = value
    for section, keys in _REQUIRED.items():
        for key in keys:
            if key not in flat:
                raise SpecError(
                    f"[{section}].{key} is missing{where}; it is required. "
                    f"Add e.g. {key} = \"column_name\" under [{section}]."
                )
    if "graph" in flat:
        graph = Path(flat["graph"])
        if not graph.is_absolute() and source is not None:
            graph = source.parent / graph
        flat["graph"] = graph
    return Spec(**flat, source=source)


def load_spec(path: str | Path) -> Spec:
    """Read and validate a TOML spec file.

    Raises
    ------
    SpecError
        If the file is missing, is not valid TOML, or fails validation.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(
            f"Spec file '{path}' does not exist. Pass the path of a TOML spec, "
            "e.g. models/baseline.toml."
        )
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"Spec file '{path}' is not valid TOML: {exc}. Fix the syntax.") from None
    return parse_spec(doc, source=path)
