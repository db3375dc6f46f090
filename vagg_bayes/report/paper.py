"""Paper tables: Bayesian columns beside two-way fixed-effects columns, esttab style.

:func:`paper_table` reads one or more results folders of ``vagg-bayes estimate`` (or
the demo) and lays out one column per specification: the outcome equation of every
folder and, for a mediation fit, each mediator's equation; a folder's nested estimate
folders (the demo's ``mechanisms/``) follow it. Folders after the first are robustness
variants. Each Bayesian column has, per row (treatment, mediators,
controls, and the effects ``total``, ``direct``, ``indirect``, ``indirect:<m>`` where
present), the posterior mean, the 94 % HDI below it in brackets and P(>0), all read
from the folder's ``coefficients.csv`` and ``effects.csv``. Beside it a frequentist
two-way fixed-effects (TWFE) column of the same equation, estimated with
:class:`linearmodels.panel.PanelOLS` on the folder's data: unit and time fixed
effects when the spec has ``[data].unit`` and ``time`` (else group and time),
standard errors clustered by the spec's group (heteroskedasticity-robust without a
group); the coefficient, its clustered SE in parentheses and the p-value. A
city-level mediator's equation is estimated, as the Bayesian one is, on one row per
(group, time) cell with the city-level regressors only. Then rows N, number of groups,
the fixed effects (yes / no lines) and the Bayesian diagnostics (max r_hat, min ESS,
divergences, per equation).

The data of the TWFE columns are found through each folder's ``manifest.json``
(``data_file``, ``data_file_sha256``, written by the command line) or ``data=``
(``--data FILE``); a file is used only when its SHA-256 equals the manifest's (or its
validated rows hash to the manifest's ``data_hash``, e.g. a Parquet copy of the CSV).
A missing or different file is an error (exit status 2 on the command line) that
names the folder and says how to fix it; ``twfe=False`` (``--no-twfe``) gives the
Bayesian columns alone.

:meth:`PaperTable.summary` (one row per column and table row, numbers) is the single
source of every rendering (:meth:`PaperTable.layout`, Markdown, LaTeX, HTML via
:mod:`vagg_bayes.report.render`).

May import: numpy, pandas, linearmodels (lazily), vagg_bayes.data.panel,
vagg_bayes.equations, vagg_bayes.errors, vagg_bayes.provenance, vagg_bayes.spec,
vagg_bayes.report (render, tables, folder).
"""

from __future__ import annotations

import html
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vagg_bayes.errors import DataError
from vagg_bayes.report import render
from vagg_bayes.report.tables import HDI_PROB

OUTCOME = "outcome"
FORMATS = ("markdown", "latex", "html")
#: files a results folder of ``vagg-bayes estimate`` must have for a table
NEEDED = ("manifest.json", "effects.csv", "coefficients.csv", "diagnostics.json")
#: columns of :meth:`PaperTable.summary`
SUMMARY_COLUMNS = ("column", "folder", "equation", "estimator", "section", "row", "estimate",
                   "se", "low", "high", "prob_positive", "p_value", "value")


# --------------------------------------------------------------------------- folders
@dataclass(frozen=True)
class EstimateFolder:
    """What a table needs from one results folder of ``vagg-bayes estimate``."""

    path: Path
    manifest: dict
    effects: pd.DataFrame
    coefficients: pd.DataFrame
    diagnostics: dict

    @property
    def spec(self) -> dict:
        """The spec recorded in ``manifest.json``."""
        return self.manifest["spec"]

    @property
    def equations(self) -> list[str]:
        """``"outcome"`` and each mediator, in the spec's order."""
        return [OUTCOME, *self.spec.get("mediators", [])]

    def dependent(self, equation: str) -> str:
        """The dependent variable of ``equation``."""
        return self.spec["outcome"] if equation == OUTCOME else equation

    def mediator_note(self, equation: str) -> dict:
        """The manifest's note on a mediator's equation (level, rows, regressors)."""
        return (self.manifest.get("mediators") or {}).get(equation, {}) or {}


def _check_folder(path: Path) -> None:
    if not path.is_dir():
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataError(
            f"Results folder '{path}' {what}. Pass folders written by `vagg-bayes estimate "
            "--out DIR` (or the demo's output folder).")
    missing = [name for name in NEEDED if not (path / name).is_file()]
    if missing:
        raise DataError(
            f"'{path}' is not a results folder of `vagg-bayes estimate`: it lacks "
            f"{', '.join(missing)} (a table needs {', '.join(NEEDED)}). Pass the --out "
            "folder of an estimate, or run `vagg-bayes estimate SPEC --data FILE --out "
            f"{path}` first.")


def load_folder(path: str | Path) -> EstimateFolder:
    """Read a results folder of ``vagg-bayes estimate`` (through
    :class:`vagg_bayes.report.folder.ResultsFolder`); a bad one is a :class:`DataError`."""
    from vagg_bayes.report.folder import EFFECT_COLUMNS, ResultsFolder

    path = Path(path)
    _check_folder(path)
    folder = ResultsFolder(path, path.name)
    manifest = folder.json("manifest.json")
    diagnostics = folder.json("diagnostics.json")
    effects = folder.effects()
    coefficients = folder.csv("coefficients.csv", columns=("term", *EFFECT_COLUMNS[1:]))
    spec = manifest.get("spec")
    if not isinstance(spec, dict) or not {"outcome", "treatment"} <= set(spec):
        raise DataError(
            f"'{path / 'manifest.json'}' has no spec (expected a 'spec' entry with "
            "'outcome' and 'treatment', as `vagg-bayes estimate` writes). Run the estimate "
            "again into a fresh folder.")
    return EstimateFolder(path, manifest, effects, coefficients, diagnostics)


def estimate_folders(dirs) -> list[EstimateFolder]:
    """The folders named, each followed by its nested estimate folders (the demo's
    ``mechanisms/``); a named folder that is not an estimate's is a :class:`DataError`."""
    from vagg_bayes.report.folder import collect_folders

    if not dirs:
        raise DataError("A table needs at least one results folder of `vagg-bayes "
                        "estimate`.")
    for path in dirs:
        _check_folder(Path(path))
    out = []
    for folder in collect_folders(dirs):
        if all(folder.has(name) for name in NEEDED):
            out.append(load_folder(folder.path))
    return out


def _candidates(folder: EstimateFolder, data: Path | None) -> list[Path]:
    if data is not None:  # an explicit file replaces the manifest's
        return [data]
    out = []
    recorded = folder.manifest.get("data_file")
    if recorded:
        recorded = Path(recorded)
        out.append(recorded)
        if not recorded.is_absolute():  # relative to where the estimate ran: look nearby
            out += [folder.path / recorded.name, folder.path.parent / recorded.name]
    return list(dict.fromkeys(out))


def find_data(folder: EstimateFolder, data: str | Path | None = None
              ) -> tuple[Path, pd.DataFrame]:
    """The data file of ``folder`` (``data``, else the manifest's), checked by hash.

    Returns the path and the validated panel. Raises :class:`DataError` when no
    candidate exists or none matches the manifest's hashes.
    """
    from vagg_bayes.data.panel import read_table, validate_panel
    from vagg_bayes.provenance import file_sha256, frame_hash

    data = Path(data) if data is not None else None
    want_file = folder.manifest.get("data_file_sha256")
    want_rows = folder.manifest.get("data_hash")
    spec = _spec(folder)

    def panel_of(path: Path) -> pd.DataFrame:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # weak data: said when it was estimated
            return validate_panel(read_table(path), spec, source=path.name)

    tried = []
    for path in _candidates(folder, data):
        if not path.is_file():
            tried.append(f"{path} (missing)")
            continue
        if want_file and file_sha256(path) == want_file:
            return path, panel_of(path)
        if want_rows:
            try:
                panel = panel_of(path)
            except DataError as exc:  # named among the files tried
                tried.append(f"{path} (cannot be used: {exc})")
                continue
            if frame_hash(panel) == want_rows:
                return path, panel
        tried.append(f"{path} (different data: its hash is not the manifest's)")
    if not tried:
        reason = "its manifest.json records no data file"
    else:
        reason = "tried " + "; ".join(tried)
    raise DataError(
        f"The two-way fixed-effects columns need the data that '{folder.path}' was "
        f"estimated on, and they were not found: {reason}. Pass that file with --data "
        "FILE (the same rows as the estimate; its SHA-256 is checked against the "
        "manifest's), or --no-twfe for the Bayesian columns alone.")


def _spec(folder: EstimateFolder):
    from vagg_bayes.spec import Spec

    fields = set(Spec.__dataclass_fields__)
    record = {k: tuple(v) if isinstance(v, list) else v for k, v in folder.spec.items()
              if k in fields and k not in ("graph", "source")}
    try:
        return Spec(**record)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"The spec recorded in '{folder.path / 'manifest.json'}' is not usable ({exc}). "
            "Run the estimate again into a fresh folder, or pass --no-twfe.") from None


# --------------------------------------------------------------------------- TWFE
@dataclass(frozen=True)
class TwfeFit:
    """One equation's two-way fixed-effects estimate (``linearmodels.PanelOLS``)."""

    params: pd.Series
    std_errors: pd.Series
    pvalues: pd.Series
    nobs: int
    n_groups: int | None
    effects: dict = field(default_factory=dict)  # effect name -> "yes" / "no"
    absorbed: tuple = ()
    cluster: str | None = None


def _regressors(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Numeric columns as they are; a categorical one as indicators ``col[level]`` of every
    level but the first in sorted order (the Bayesian design's coding)."""
    parts = {}
    for col in columns:
        series = frame[col]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            parts[col] = series.astype(float).to_numpy()
        else:
            values = series.astype(str).to_numpy()
            for level in sorted(set(values))[1:]:
                parts[f"{col}[{level}]"] = (values == level).astype(float)
    return pd.DataFrame(parts, index=frame.index)


def twfe_equation(panel: pd.DataFrame, spec, equation: str, *, level: str = "row",
                  regressors: list[str] | None = None) -> TwfeFit:
    """Estimate one equation of ``spec`` by two-way fixed effects (PanelOLS).

    Parameters
    ----------
    panel : DataFrame
        The validated panel.
    spec : Spec
    equation : str
        ``"outcome"`` or a mediator's name.
    level : {"row", "group-time", "group"}
        A city-level mediator (``group-time``, ``group``) is estimated on one row per
        cell with group (and time) effects, as its Bayesian equation is.
    regressors : list of str, optional
        Default: treatment, mediators (outcome equation) and controls.

    Unit and time effects with ``spec.unit`` and ``spec.time``; otherwise group and
    time effects (whichever the spec has). Standard errors clustered by ``spec.group``
    (robust without one).
    """
    from linearmodels.panel import PanelOLS

    from vagg_bayes.equations import cell_frame

    y_name = spec.outcome if equation == OUTCOME else equation
    if regressors is None:
        regressors = [spec.treatment, *(spec.mediators if equation == OUTCOME else ()),
                      *spec.controls]
    frame = panel
    unit = spec.unit
    if level != "row":
        frame, _ = cell_frame(panel, spec)
        unit = None
    frame = frame.reset_index(drop=True)
    X = _regressors(frame, list(regressors))
    y = frame[y_name].astype(float)
    time_col = spec.time
    effects = {}
    if unit is not None and time_col is not None:
        index = pd.MultiIndex.from_arrays([frame[unit].to_numpy(), frame[time_col].to_numpy()])
        kwargs = {"entity_effects": True, "time_effects": True}
        effects[unit] = "yes"
    else:
        times = frame[time_col].to_numpy() if time_col else np.zeros(len(frame), dtype=int)
        index = pd.MultiIndex.from_arrays([np.arange(len(frame)), times])
        kwargs = {"time_effects": time_col is not None}
        entity = unit or spec.group
        if entity is not None:
            codes = pd.Series(pd.factorize(frame[entity])[0], index=index, name=entity)
            kwargs["other_effects"] = codes
            effects[entity] = "yes"
    if unit is not None and spec.group is not None and spec.group not in effects:
        effects[spec.group] = "no"
    if time_col is not None:
        effects[time_col] = "yes"
    X.index = index
    y.index = index
    fit_kwargs = {"cov_type": "robust"}
    if spec.group is not None:
        fit_kwargs = {"cov_type": "clustered",
                      "clusters": pd.Series(pd.factorize(frame[spec.group])[0], index=index,
                                            name=spec.group)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # absorbed regressors: reported in the notes
            result = PanelOLS(y, X, drop_absorbed=True, **kwargs).fit(**fit_kwargs)
    except Exception as exc:  # linearmodels' own errors: rank, absorbed, ...
        raise DataError(
            f"The two-way fixed-effects regression of {y_name} on {', '.join(X.columns)} "
            f"could not be estimated ({type(exc).__name__}: {exc}). Check those columns "
            "for collinearity with the fixed effects, or pass --no-twfe.") from None
    absorbed = tuple(c for c in X.columns if c not in result.params.index)
    groups = int(frame[spec.group].nunique()) if spec.group is not None else None
    return TwfeFit(params=result.params, std_errors=result.std_errors,
                   pvalues=result.pvalues, nobs=int(result.nobs), n_groups=groups,
                   effects=effects, absorbed=absorbed, cluster=spec.group)


# --------------------------------------------------------------------------- table
def _terms(folder: EstimateFolder, equation: str) -> list[str]:
    """The table's coefficient rows of one equation: treatment, mediators, controls
    (a categorical control's indicator terms), in the spec's order."""
    spec = folder.spec
    prefix = "" if equation == OUTCOME else f"{equation}~"
    names = [t[len(prefix):] for t in folder.coefficients["term"].astype(str)
             if t.startswith(prefix) and (prefix or "~" not in t)]
    wanted = [spec["treatment"], *(spec.get("mediators", []) if equation == OUTCOME else []),
              *spec.get("controls", [])]
    out = []
    for col in wanted:
        out += [t for t in names if t == col or t.startswith(f"{col}[")]
    return out


def _all_terms(folder: EstimateFolder, equation: str, twfe: TwfeFit | None) -> list[str]:
    terms = _terms(folder, equation)
    if twfe is not None:  # a control the Bayesian equation left out (e.g. city-level)
        terms += [t for t in twfe.params.index if t not in terms]
        terms += [t for t in twfe.absorbed if t not in terms]
    return terms


def _bayes_rows(folder, equation, label, column, terms) -> list[dict]:
    prefix = "" if equation == OUTCOME else f"{equation}~"
    coefs = folder.coefficients.assign(term=folder.coefficients["term"].astype(str)) \
        .set_index("term")
    base = {"column": column, "folder": str(folder.path), "equation": label,
            "estimator": "Bayes"}
    rows = []
    for term in terms:
        row = {**base, "section": "coefficients", "row": term}
        if prefix + term in coefs.index:
            c = coefs.loc[prefix + term]
            row.update(estimate=float(c["mean"]), se=float(c.get("sd", np.nan)),
                       low=float(c["hdi_low"]), high=float(c["hdi_high"]),
                       prob_positive=float(c["prob_positive"]))
        rows.append(row)
    if equation == OUTCOME:
        effects = folder.effects.assign(effect=folder.effects["effect"].astype(str))
        for e in effects.itertuples(index=False):
            if e.effect in ("total", "direct", "indirect") or e.effect.startswith("indirect:"):
                rows.append({**base, "section": "effects", "row": e.effect,
                             "estimate": float(e.mean), "se": float(getattr(e, "sd", np.nan)),
                             "low": float(e.hdi_low), "high": float(e.hdi_high),
                             "prob_positive": float(e.prob_positive)})
    spec = folder.spec
    note = folder.mediator_note(equation)
    n = folder.manifest.get("n_rows") if equation == OUTCOME else note.get("rows")
    stats = [("N", n), (f"groups ({spec.get('group')})" if spec.get("group") else "groups",
                        folder.manifest.get("n_groups") if spec.get("group") else None)]
    for name, value in stats:
        rows.append({**base, "section": "statistics", "row": name,
                     "estimate": float(value) if value is not None else np.nan})
    for name, value in _bayes_effects(folder, equation).items():
        rows.append({**base, "section": "effects_lines", "row": name, "value": value})
    diag = (folder.diagnostics.get("equations") or {}).get(equation, folder.diagnostics)
    for name, key in (("max r_hat", "max_r_hat"), ("min ESS (bulk)", "min_ess_bulk"),
                      ("divergences", "divergences")):
        value = diag.get(key)
        rows.append({**base, "section": "diagnostics", "row": name,
                     "estimate": float(value) if value is not None else np.nan})
    return rows


def _bayes_effects(folder: EstimateFolder, equation: str) -> dict[str, str]:
    """The yes / no lines of a Bayesian column: unit, group, time, group-time effects."""
    spec = folder.spec
    meta = folder.manifest
    out = {}
    unit_fx = (meta.get("unit_effects") or {}).get(equation, "none")
    if spec.get("unit"):
        out[spec["unit"]] = "no" if unit_fx in (None, "none") else f"yes ({unit_fx})"
    if spec.get("group"):
        out[spec["group"]] = "yes (partial pooling)"
    if spec.get("time"):
        out[spec["time"]] = "yes"
    if spec.get("group") and spec.get("time"):
        cell = (meta.get("group_time_effects") or {}).get(equation, False)
        out[f"{spec['group']} x {spec['time']}"] = "yes (random)" if cell else "no"
    return out


def _twfe_rows(fit: TwfeFit, folder, label, column, terms, spec) -> list[dict]:
    base = {"column": column, "folder": str(folder.path), "equation": label,
            "estimator": "TWFE"}
    rows = []
    for term in terms:
        row = {**base, "section": "coefficients", "row": term}
        if term in fit.params.index:
            est, se = float(fit.params[term]), float(fit.std_errors[term])
            row.update(estimate=est, se=se, low=est - 1.959963984540054 * se,
                       high=est + 1.959963984540054 * se, p_value=float(fit.pvalues[term]))
        elif term in fit.absorbed:
            row.update(value="absorbed")
        rows.append(row)
    group = spec.group
    rows.append({**base, "section": "statistics", "row": "N", "estimate": float(fit.nobs)})
    rows.append({**base, "section": "statistics",
                 "row": f"groups ({group})" if group else "groups",
                 "estimate": float(fit.n_groups) if fit.n_groups is not None else np.nan})
    lines = dict(fit.effects)
    if group and spec.time:
        lines[f"{group} x {spec.time}"] = "no"
    for name in _bayes_effects(folder, OUTCOME):
        lines.setdefault(name, "no")
    for name, value in lines.items():
        rows.append({**base, "section": "effects_lines", "row": name, "value": value})
    rows.append({**base, "section": "effects_lines", "row": "SE clustered by",
                 "value": group or "none (robust)"})
    return rows


@dataclass(frozen=True)
class PaperTable:
    """An esttab-style table of Bayesian and TWFE columns; :meth:`summary` is its source."""

    frame: pd.DataFrame
    notes: tuple = ()

    def summary(self) -> pd.DataFrame:
        """One row per (column, table row): numbers and yes / no text.

        Columns: ``column`` (the header, ``(1) resilience`` ...), ``folder``,
        ``equation`` (dependent variable), ``estimator`` (``Bayes`` or ``TWFE``),
        ``section`` (``coefficients``, ``effects``, ``statistics``, ``effects_lines``,
        ``diagnostics``), ``row``, ``estimate`` (posterior mean or coefficient; N,
        groups, diagnostics), ``se`` (posterior SD or clustered SE), ``low`` / ``high``
        (94 % HDI, or the 95 % confidence interval), ``prob_positive`` (Bayes),
        ``p_value`` (TWFE), ``value`` (text of the fixed-effects lines).
        """
        return self.frame.copy()

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(self.frame["column"]))

    def layout(self, digits: int = 3, prob: str = "P(>0)") -> pd.DataFrame:
        """The table as text cells: each coefficient or effect on three lines (estimate;
        HDI in brackets or SE in parentheses; P(>0) or p-value), then the statistics."""
        frame = self.summary()
        columns = self.columns
        kinds = frame.drop_duplicates("column").set_index("column")
        out = [{"": "", **{c: kinds.loc[c, "estimator"] for c in columns}}]
        out.append({"": "results", **{c: Path(kinds.loc[c, "folder"]).name for c in columns}})
        order = ["coefficients", "effects", "statistics", "effects_lines", "diagnostics"]
        fmt = f"{{:.{digits}f}}"
        for section in order:
            part = frame[frame["section"] == section]
            if part.empty:
                continue
            heading = {"coefficients": "", "effects": "effects", "statistics": "",
                       "effects_lines": "fixed / group effects",
                       "diagnostics": "diagnostics (Bayes)"}[section]
            if heading:
                out.append({"": f"— {heading} —", **{c: "" for c in columns}})
            for row in dict.fromkeys(part["row"]):
                cells = part[part["row"] == row].set_index("column")
                if section in ("coefficients", "effects"):
                    lines = [{"": row}, {"": ""}, {"": ""}]
                    for c in columns:
                        texts = _cell(cells.loc[c] if c in cells.index else None, fmt,
                                      prob)
                        for line, text in zip(lines, texts, strict=True):
                            line[c] = text
                    out += lines
                else:
                    line = {"": row}
                    for c in columns:
                        r = cells.loc[c] if c in cells.index else None
                        line[c] = _stat(r, section, digits)
                    out.append(line)
        return pd.DataFrame(out, columns=["", *columns])

    def render(self, fmt: str = "markdown", digits: int = 3) -> str:
        """The table as ``markdown``, ``latex`` or ``html`` text, with its notes."""
        table = self.layout(digits)
        notes = list(self.notes)
        if fmt == "markdown":
            return render.to_markdown(table, digits) + "".join(f"\n{n}\n" for n in notes)
        if fmt == "latex":  # no ">" in LaTeX text (OT1 fonts print it as an inverted ?)
            table = self.layout(digits, prob="P(+)")
            caption = self.caption.replace("P(>0)", "P(+), the posterior probability of a "
                                           "positive value")
            text = render.to_latex(table, digits, caption=caption)
            notes_tex = "".join(f"% {n}\n" for n in notes)
            return text + notes_tex
        if fmt == "html":
            return render.to_html(table, digits) + "".join(
                f"<p>{html.escape(n)}</p>" for n in notes)
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}.")

    @property
    def caption(self) -> str:
        return (f"Bayes: posterior mean, {int(HDI_PROB * 100)}% HDI in brackets, P(>0). "
                "TWFE: coefficient, clustered standard error in parentheses, p-value.")

    def to_markdown(self, digits: int = 3) -> str:
        return self.render("markdown", digits)

    def to_latex(self, digits: int = 3) -> str:
        return self.render("latex", digits)

    def to_html(self, digits: int = 3) -> str:
        return self.render("html", digits)

    def __str__(self) -> str:
        return self.to_markdown()


def _finite(x) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


def _cell(r, fmt: str, prob: str = "P(>0)") -> list[str]:
    if r is None:
        return ["", "", ""]
    if not _finite(r["estimate"]):
        return [r["value"] if isinstance(r["value"], str) else "", "", ""]
    est = fmt.format(r["estimate"])
    if r["estimator"] == "Bayes":
        return [est, f"[{fmt.format(r['low'])}, {fmt.format(r['high'])}]",
                f"{prob}={r['prob_positive']:.2f}"]
    return [est, f"({fmt.format(r['se'])})", f"p={r['p_value']:.3f}"]


def _stat(r, section: str, digits: int) -> str:
    if r is None:
        return ""
    if section == "effects_lines":
        return r["value"] if isinstance(r["value"], str) else ""
    value = r["estimate"]
    if not _finite(value):
        return ""
    if r["row"] == "max r_hat":
        return f"{value:.3f}"
    return f"{value:.0f}"


def paper_table(folders, *, data: str | Path | None = None, twfe: bool = True) -> PaperTable:
    """The paper table of one or more results folders.

    Parameters
    ----------
    folders : sequence of path
        Results folders of ``vagg-bayes estimate``: the first is the baseline, the rest
        robustness variants; a mediation fit adds a column per mediator equation. Each
        folder is followed by its nested estimate folders (the demo's ``mechanisms/``).
    data : path, optional
        The data file for the TWFE columns (default: each folder's ``manifest.json``
        ``data_file``); it must be the data the folder was estimated on.
    twfe : bool, default True
        Add the two-way fixed-effects column beside every Bayesian one.

    Raises
    ------
    DataError
        A folder that is not a results folder; with ``twfe``, data not found or not
        the estimate's, or a TWFE regression that cannot be estimated.
    """
    loaded = estimate_folders(list(folders))
    rows, notes, k = [], [], 0
    for folder in loaded:
        panel = spec = None
        if twfe:
            path, panel = find_data(folder, data)
            spec = _spec(folder)
        for equation in folder.equations:
            label = folder.dependent(equation)
            fit = None
            if twfe:
                note = folder.mediator_note(equation)
                level = note.get("level", "row") if equation != OUTCOME else "row"
                regressors = note.get("regressors") if level != "row" else None
                fit = twfe_equation(panel, spec, equation, level=level,
                                    regressors=regressors)
                if fit.absorbed:
                    notes.append(f"{folder.path.name}, {label}: {', '.join(fit.absorbed)} "
                                 "absorbed by the fixed effects in the TWFE column.")
            terms = _all_terms(folder, equation, fit)
            k += 1
            rows += _bayes_rows(folder, equation, label, f"({k}) {label}", terms)
            if fit is not None:
                k += 1
                rows += _twfe_rows(fit, folder, label, f"({k}) {label}", terms, spec)
        if twfe and folder.spec.get("family") == "bernoulli":
            notes.append(f"{folder.path.name}: the TWFE column of the binary outcome is a "
                         "linear probability model; the Bayesian one is logistic (its "
                         "coefficients are log-odds; its effects are on the probability).")
        if folder.spec.get("moderators"):
            notes.append(f"{folder.path.name}: the moderators' terms are not shown.")
        if twfe and folder.spec.get("instrument"):
            notes.append(f"{folder.path.name}: the TWFE column is OLS with fixed effects, "
                         "not an IV estimate.")
    frame = pd.DataFrame(rows)
    # rows across folders: treatments, then mediators, then controls (stable otherwise)
    roles = {f.spec["treatment"]: 0 for f in loaded}
    roles.update({m: 1 for f in loaded for m in f.spec.get("mediators", [])})
    coef = frame["section"] == "coefficients"
    rank = frame["row"].map(lambda t: roles.get(str(t).split("[")[0], 2))
    frame = pd.concat([frame[coef].assign(_rank=rank[coef]).sort_values("_rank", kind="stable")
                       .drop(columns="_rank"), frame[~coef]], ignore_index=True)
    for col in SUMMARY_COLUMNS:
        if col not in frame:
            frame[col] = np.nan
    frame = frame[list(SUMMARY_COLUMNS)]
    notes.insert(0, f"Bayes: posterior mean, {int(HDI_PROB * 100)}% HDI in brackets, "
                 "P(>0). TWFE (linearmodels PanelOLS): coefficient, standard error clustered "
                 "by group in parentheses, p-value; unit and time fixed effects (group and "
                 "time without units).")
    return PaperTable(frame=frame, notes=tuple(dict.fromkeys(notes)))
