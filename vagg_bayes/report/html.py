"""The self-contained HTML report of one or more results folders (``report.html``).

:func:`build_report` reads the folders' files (:mod:`vagg_bayes.report.folder`) and returns
one HTML page: the headline effect in one sentence and the forest plot of the effects on
its first screen, then the DAG, posterior densities, the posterior predictive check,
refutations, model comparison, heterogeneity, policy scenarios, sensitivity, diagnostics
(a loud banner at the top when they fail) and the manifest. A section whose files are
absent is left out with a one-line note. Figures are PNG ``data:`` URIs and the style
sheet is inline: the page loads nothing from the network. Every number is read from the
folders' CSV and JSON files (the same ``summary()`` tables the commands wrote), so the
report is rebuilt without refitting.

May import: the standard library, numpy, pandas, xarray (lazily), ``errors``, ``graph``
(lazily), ``report.folder``, ``report.figures``, ``report.io``, ``report.render``.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

from vagg_bayes.errors import GraphError
from vagg_bayes.report import figures, render
from vagg_bayes.report.folder import ResultsFolder, collect_folders
from vagg_bayes.report.io import write_text

#: The report's file name inside a results folder.
REPORT_NAME = "report.html"

#: The effect rows drawn in the forest plot and the densities (not the moderator rows).
_MAIN_KINDS = ("total", "direct", "indirect")
#: Most effects drawn as densities per folder; most groups listed per table.
_MAX_DENSITIES = 12
_MAX_GROUPS = 10
#: Most problems listed in the diagnostics banner (the rest: in the Diagnostics section).
_MAX_BANNER = 3

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;
max-width:1180px;padding:12px 24px 60px;color:#1b1b1b;line-height:1.4}
h1{font-size:1.35em;margin:8px 0 4px}h2{font-size:1.15em;margin:28px 0 6px;
border-bottom:1px solid #ddd;padding-bottom:3px}h3{font-size:1em;margin:16px 0 4px}
.headline{font-size:1.3em;margin:6px 0 4px}.sub{color:#555;margin:0 0 6px;font-size:.92em}
.banner{background:#b8322a;color:#fff;padding:10px 14px;font-weight:bold;margin:8px 0;
border-radius:4px}.banner ul{margin:4px 0 0;font-weight:normal}.banner a{color:#fff}
.absent{color:#777;font-style:italic}img{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.85em;margin:6px 0}
th,td{border-bottom:1px solid #e4e4e4;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
td.detail{text-align:left;font-size:.9em;color:#444;min-width:260px}
.scroll{overflow-x:auto}table.refutations{width:100%}th.txt{text-align:left}
td.txt{text-align:left}
.pass{color:#1b7d2e;font-weight:bold}.fail{color:#b8322a;font-weight:bold}
.inconclusive{color:#b07500;font-weight:bold}nav{font-size:.85em;color:#555;margin:8px 0}
nav a{color:#1f5fa8;margin-right:10px}figure{margin:8px 0}figcaption{font-size:.85em;
color:#555}details{margin:6px 0}code{font-size:.9em}
"""

_MARKS = {"pass": ("\u2714 pass", "pass"), "fail": ("\u2718 fail", "fail"),
          "inconclusive": ("? inconclusive", "inconclusive")}

_SECTIONS = (("effects", "Effects"), ("dag", "Causal graph"),
             ("design", "Identification design"),
             ("densities", "Posterior densities"), ("ppc", "Posterior predictive check"),
             ("refutations", "Refutations"), ("comparison", "Model comparison"),
             ("heterogeneity", "Heterogeneity"), ("scenarios", "Policy scenarios"),
             ("sensitivity", "Sensitivity"), ("diagnostics", "Diagnostics"),
             ("manifest", "Manifest"))


# --------------------------------------------------------------------------- formatting


def decimals(sd: float) -> int:
    """Decimals that show a posterior SD with two significant digits (1 to 6)."""
    if not (isinstance(sd, int | float) and math.isfinite(sd) and sd > 0):
        return 3
    return int(min(6, max(1, 1 - math.floor(math.log10(sd)))))


def fmt(value: float, digits: int) -> str:
    """A number with ``digits`` decimals ('n/a' when missing)."""
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    text = f"{float(value):.{digits}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def fmt_prob(p: float) -> str:
    """A probability: two decimals, three near 0 or 1."""
    if p is None or not math.isfinite(float(p)):
        return "n/a"
    p = float(p)
    return f"{p:.2f}" if 0.01 <= p <= 0.99 else f"{p:.3f}"


def _e(text: object) -> str:
    return html.escape(str(text))


def _img(png: bytes, alt: str, *, ident: str | None = None) -> str:
    data = base64.b64encode(png).decode("ascii")
    idattr = f' id="{_e(ident)}"' if ident else ""
    return f'<img{idattr} alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _figure(png: bytes, caption: str, *, ident: str | None = None) -> str:
    return f"<figure>{_img(png, caption, ident=ident)}<figcaption>{_e(caption)}" \
           "</figcaption></figure>"


def _file_figure(path: Path, caption: str) -> str:
    return _figure(path.read_bytes(), caption)


def _table(frame: pd.DataFrame, digits: int = 3) -> str:
    return render.to_html(frame, digits)


def _absent(text: str) -> str:
    return f'<p class="absent">{_e(text)}</p>'


def _kind(name: str) -> str:
    return figures.effect_kind(str(name))


def _is_main(name: str) -> bool:
    return "[" not in str(name) and _kind(name) in _MAIN_KINDS


def _pretty(name: str, *, several: bool) -> str:
    name = str(name)
    if name.startswith("indirect:"):
        return f"indirect via {name.split(':', 1)[1]}"
    if name == "indirect" and several:
        return "indirect (all mechanisms)"
    return name


# --------------------------------------------------------------------------- context


class _Context:
    """The folders and the names the sentences use (treatment, outcome, family)."""

    def __init__(self, folders: list[ResultsFolder]):
        self.folders = folders
        spec = next((f.spec for f in folders if f.spec), {})
        self.treatment = spec.get("treatment") or "the treatment"
        self.outcome = spec.get("outcome") or "the outcome"
        self.family = spec.get("family") or "gaussian"

    @property
    def change(self) -> str:
        if self.family == "bernoulli":
            return f"the probability of {self.outcome}"
        return self.outcome

    @property
    def axis(self) -> str:
        return (f"change in {self.change} per one-unit rise in {self.treatment} "
                "(mean, 94 % HDI)")

    def effect_tables(self) -> list[tuple[ResultsFolder, str, pd.DataFrame]]:
        """(folder, file name, table) of every effects.csv and averaged_effects.csv."""
        out = []
        for folder in self.folders:
            for name in ("effects.csv", "averaged_effects.csv"):
                frame = folder.effects(name)
                if frame is not None and len(frame):
                    out.append((folder, name, frame))
        return out


# --------------------------------------------------------------------------- headline


def headline(folders: list[ResultsFolder]) -> tuple[str, str]:
    """The headline sentence (HTML) and the line under it naming its source.

    The total effect of the first folder that has one (``effects.csv``, else
    ``averaged_effects.csv``, row ``total``); without any, the first scenario's ``all``
    row; else a sentence saying there is no effect to report.
    """
    ctx = _Context(folders)
    for folder, name, frame in ctx.effect_tables():
        rows = frame[frame["effect"].astype(str) == "total"]
        if not len(rows):
            continue
        row = rows.iloc[0]
        d = decimals(row["sd"])
        lead = ("Averaged over the compared models by their stacking weights, a one-unit "
                "rise" if name == "averaged_effects.csv" else "A one-unit rise")
        sentence = (f"{lead} in <b>{_e(ctx.treatment)}</b> changes <b>{_e(ctx.change)}</b> "
                    f"by <b>{fmt(row['mean'], d)}</b> (94 % HDI {fmt(row['hdi_low'], d)} to "
                    f"{fmt(row['hdi_high'], d)}); P(effect &gt; 0) = "
                    f"{fmt_prob(row['prob_positive'])}.")
        source = f"Total effect from {folder.label}/{name} (row total)"
        mediated = _mediation_line(ctx)
        return sentence, source + (f". {mediated}" if mediated else ".")
    for folder in folders:
        table = folder.csv("scenario.csv")
        if table is not None and "group" in table and (table["group"].astype(str) == "all").any():
            row = table[table["group"].astype(str) == "all"].iloc[0]
            d = decimals(row["sd"])
            what = folder.manifest.get("scenario") or "The scenario"
            sentence = (f"{_e(what)} changes the mean of <b>{_e(ctx.outcome)}</b> by "
                        f"<b>{fmt(row['mean'], d)}</b> (94 % HDI {fmt(row['hdi_low'], d)} "
                        f"to {fmt(row['hdi_high'], d)}); P(change &gt; 0) = "
                        f"{fmt_prob(row['prob_positive'])}.")
            return sentence, f"From {folder.label}/scenario.csv (row all)."
    return ("No effect to report: none of the folders holds effects.csv, "
            "averaged_effects.csv or scenario.csv.", "")


def _mediation_line(ctx: _Context) -> str:
    """'Through the mechanisms (...): direct ..., indirect ...' from the first table with both."""
    for folder, name, frame in ctx.effect_tables():
        by = frame.set_index(frame["effect"].astype(str))
        if "direct" in by.index and "indirect" in by.index:
            parts = []
            for row_name in ("direct", "indirect"):
                row = by.loc[row_name]
                d = decimals(row["sd"])
                parts.append(f"{row_name} {fmt(row['mean'], d)} (94 % HDI "
                             f"{fmt(row['hdi_low'], d)} to {fmt(row['hdi_high'], d)})")
            paths = [n for n in by.index if n.startswith("indirect:")]
            tail = f" through {len(paths)} mechanisms" if paths else ""
            return f"Mechanisms ({folder.label}/{name}): {parts[0]}, {parts[1]}{tail}."
    return ""


# --------------------------------------------------------------------------- sections


def _effects_section(ctx: _Context) -> str:
    tables = ctx.effect_tables()
    if not tables:
        return _absent("No effects.csv or averaged_effects.csv in the folders.")
    several = len(tables) > 1
    rows: list[figures.Interval] = []
    for folder, name, frame in tables:
        tag = folder.label + (" (averaged)" if name == "averaged_effects.csv" else "")
        main = frame[frame["effect"].map(_is_main)]
        has_paths = main["effect"].astype(str).str.startswith("indirect:").any()
        for row in main.itertuples(index=False):
            label = _pretty(row.effect, several=has_paths)
            rows.append(figures.Interval(f"{tag} | {label}" if several else label,
                                         float(row.mean), float(row.hdi_low),
                                         float(row.hdi_high), _kind(row.effect)))
    parts = []
    if rows:
        png = figures.forest(rows, xlabel=ctx.axis)
        parts.append(_figure(png, "Total, direct and indirect effects (per mechanism): "
                             "posterior mean and 94 % HDI", ident="effects-figure"))
    for folder, name, frame in tables:
        parts.append(f"<h3>{_e(folder.label)}/{_e(name)}</h3>" + _table(frame, 4))
        extras = [(n, folder.csv(n)) for n in ("coefficients.csv", "classical.csv",
                                                "within_between.csv")
                  if name == "effects.csv" and folder.has(n)]
        for extra, table in extras:
            parts.append(f"<details><summary>{_e(folder.label)}/{_e(extra)}</summary>"
                         f"{_table(table, 4)}</details>")
    return "".join(parts)


def _dag_section(ctx: _Context) -> str:
    recorded = [f for f in ctx.folders if f.spec.get("graph")]
    if not recorded:
        return _absent("No causal graph: no folder's spec names a [model].graph.")
    drawn: set[Path] = set()
    parts = []
    for folder in recorded:
        path = folder.graph_file()
        if path is None:
            parts.append(_absent(f"{folder.label}: the graph file {folder.spec['graph']} "
                                 "recorded in the manifest is not there any more (nor "
                                 "beside the results)."))
            continue
        if path.resolve() in drawn:
            continue
        drawn.add(path.resolve())
        from vagg_bayes.graph.dag import load_graph

        try:
            graph = load_graph(path)
        except GraphError as exc:
            parts.append(_absent(f"{path}: {exc}"))
            continue
        spec = folder.spec
        png = figures.dag(graph, treatment=spec.get("treatment"), outcome=spec.get("outcome"),
                          mediators=tuple(spec.get("mediators") or ()))
        parts.append(_figure(png, f"{path.name} (spec of {folder.label}): treatment blue, "
                             "mediators orange, outcome red, latent grey dashed boxes; dark "
                             "arrows lie on causal paths from treatment to outcome"))
    return "".join(parts)


def _first_stage_html(label: str, stage: dict) -> str:
    """The first stage of an IV fit: strength table and, when weak, the warning."""
    instruments = ", ".join(stage.get("instruments") or []) or "the instrument"
    rows = [{"instruments": instruments, "F": stage.get("f"), "F kind": stage.get("f_kind"),
             "partial R2": stage.get("partial_r2"), "n": stage.get("n"),
             "clusters": stage.get("n_clusters"),
             "Stock-Yogo 10 % size": stage.get("stock_yogo_10pct_size")}]
    text = (f"<h3>{_e(label)}: instrumental variables ({_e(instruments)})</h3>"
            + _table(pd.DataFrame(rows), 3))
    coefs = stage.get("coefficients") or {}
    if coefs:
        text += ("<p>First-stage coefficients: "
                 + _e(", ".join(f"{k} {v:.4g}" for k, v in coefs.items())) + ".</p>")
    warning = stage.get("warning")
    if warning:
        css = "fail" if stage.get("weak") else "inconclusive"
        text += f'<p class="{css}">{_e(warning)}</p>'
    else:
        text += ('<p class="pass">The first stage is strong (F above the Stock-Yogo '
                 "critical value for 10 % maximal size).</p>")
    return text


def _pre_trend_html(folder: ResultsFolder, verdict: dict) -> str:
    """The shock design's pre-trend verdict, its table and the event-study figure."""
    passed = verdict.get("passed")
    mark = ("inconclusive" if passed is None else "pass" if passed else "fail")
    label, css = _MARKS[mark]
    text = (f"<h3>{_e(folder.label)}: shock design (event study)</h3>"
            f'<p>Pre-trend check: <span class="{css}">{_e(label)}</span>')
    if verdict.get("joint_prob") is not None:
        text += (f"; joint_prob {verdict['joint_prob']:.3f}, P(every lead within "
                 f"\u00b1{verdict.get('band', float('nan')):.3g}) "
                 f"{verdict.get('prob_within_band', float('nan')):.3f}")
    text += f". Rule: {_e(verdict.get('rule') or verdict.get('note') or '')}.</p>"
    if passed is False:
        text += ('<p class="fail">The leads before the shock are not zero: the parallel-'
                 "trends assumption behind the shock design is in doubt; report the "
                 "event study, not only the post-shock effect.</p>")
    table = folder.csv("pre_trend.csv")
    if table is not None and len(table):
        text += _table(table, 4)
    if folder.has("event_study.png"):
        text += _file_figure(folder.path / "event_study.png",
                             f"{folder.label}: event-study coefficients with 94 % HDIs "
                             "(event_study.png)")
    return text


def _design_section(ctx: _Context) -> str:
    parts = []
    for folder in ctx.folders:
        found = folder.diagnostics()
        diag = found[1] if found is not None else {}
        if diag.get("first_stage"):
            parts.append(_first_stage_html(folder.label, diag["first_stage"]))
        if diag.get("pre_trend") is not None or folder.has("pre_trend.csv"):
            parts.append(_pre_trend_html(folder, diag.get("pre_trend") or {}))
    if not parts:
        return _absent("Selection on observables: no instrument ([variables] instrument) and no "
                       "shock design ([design] shock_year) in the folders' specs; the "
                       "effects rest on the causal graph's adjustment set.")
    return "".join(parts)


def _effect_draws(folder: ResultsFolder) -> dict[str, np.ndarray] | str:
    """Effect draws from ``posterior.nc`` (variable ``effects``), or why there are none."""
    import xarray as xr

    path = folder.path / "posterior.nc"
    try:
        with xr.open_dataset(path, group="posterior") as data:
            if "effects" not in data.data_vars:
                return (f"{folder.label}/posterior.nc holds no effect draws (written by an "
                        "earlier version); estimate again to draw the densities.")
            array = data["effects"].load()
    except (OSError, ValueError) as exc:
        return f"{folder.label}/posterior.nc cannot be read ({exc})."
    return {str(name): np.asarray(array.sel(effect=name))
            for name in array["effect"].values}


def _densities_section(ctx: _Context) -> str:
    holders = [f for f in ctx.folders if f.has("posterior.nc")]
    if not holders:
        return _absent("No posterior.nc in the folders.")
    parts = []
    for folder in holders:
        draws = _effect_draws(folder)
        if isinstance(draws, str):
            parts.append(_absent(draws))
            continue
        frame = folder.effects()
        intervals = {}
        if frame is not None:
            intervals = {str(r.effect): figures.Interval(str(r.effect), r.mean, r.hdi_low,
                                                         r.hdi_high, _kind(r.effect))
                         for r in frame.itertuples(index=False)}
        shown = {k: v for k, v in draws.items() if _is_main(k)} or draws
        shown = dict(list(shown.items())[:_MAX_DENSITIES])
        png = figures.densities(shown, intervals, xlabel=ctx.axis)
        parts.append(_figure(png, f"{folder.label}: posterior densities of the effects "
                             "(posterior.nc), 94 % HDI of effects.csv shaded"))
    return "".join(parts)


def _verdicts(frame: pd.DataFrame) -> pd.Series:
    if "verdict" in frame:
        return frame["verdict"].fillna("inconclusive").astype(str)
    passed = frame["passed"]
    return passed.map(lambda v: "inconclusive" if pd.isna(v) else
                      ("pass" if str(v).lower() in ("true", "1", "1.0") else "fail"))


def _refutation_table(frame: pd.DataFrame) -> str:
    verdicts = _verdicts(frame)
    numeric = [c for c in ("estimate", "refuted_estimate", "hdi_low", "hdi_high", "p_value")
               if c in frame]
    head = ["verdict", "refuter"] + (["effect"] if "effect" in frame else []) + numeric \
        + ["detail"]
    out = ['<div class="scroll"><table class="refutations"><thead><tr>'
           + "".join(f'<th class="txt">{_e(c)}</th>' if c in ("refuter", "effect", "detail")
                     else f"<th>{_e(c)}</th>" for c in head) + "</tr></thead><tbody>"]
    for k, row in enumerate(frame.itertuples(index=False)):
        verdict = verdicts.iloc[k]
        mark, css = _MARKS.get(verdict, (verdict, "inconclusive"))
        cells = [f'<td class="{css}">{_e(mark)}</td>',
                 f'<td class="txt">{_e(row.refuter)}</td>']
        if "effect" in frame:
            effect = "" if pd.isna(row.effect) else row.effect
            cells.append(f'<td class="txt">{_e(effect)}</td>')
        for col in numeric:
            value = getattr(row, col)
            cells.append(f"<td>{'' if pd.isna(value) else _e(f'{float(value):.4g}')}</td>")
        detail = "" if pd.isna(row.detail) else row.detail
        cells.append(f'<td class="detail">{_e(detail)}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</tbody></table></div>"


def _refutations_section(ctx: _Context) -> str:
    parts = []
    for folder in ctx.folders:
        frame = folder.csv("refutations.csv", columns=("refuter", "passed", "detail"))
        if frame is None:
            continue
        counts = _verdicts(frame).value_counts()
        summary = ", ".join(f"{int(counts.get(v, 0))} {v}"
                            for v in ("pass", "fail", "inconclusive"))
        parts.append(f"<h3>{_e(folder.label)}/refutations.csv</h3><p>{len(frame)} rows: "
                     f"{_e(summary)}.</p>" + _refutation_table(frame))
        for path in folder.files("refute_*.png"):
            test = path.stem.removeprefix("refute_")
            parts.append(_file_figure(path, f"{folder.label}: {test} — the refits' "
                                      "estimates against the real one"))
    if not parts:
        return _absent("No refutations.csv in the folders (run vagg-bayes refute).")
    return "".join(parts)


def _ppc_section(ctx: _Context) -> str:
    parts = []
    for folder in ctx.folders:
        if folder.has("ppc.png"):
            parts.append(_file_figure(folder.path / "ppc.png",
                                      f"{folder.label}: observed against posterior "
                                      "predictive replicates (ppc.png)"))
        frame = folder.csv("refutations.csv", columns=("refuter", "passed", "detail"))
        if frame is not None:
            rows = frame[frame["refuter"].astype(str) == "posterior_predictive"]
            if len(rows):
                parts.append(_refutation_table(rows))
    if not parts:
        return _absent("No posterior predictive check (ppc.png) in the folders (run "
                       "vagg-bayes refute with the posterior_predictive test).")
    return "".join(parts)


def _comparison_section(ctx: _Context) -> str:
    parts = []
    for folder in ctx.folders:
        for name in ("comparison.csv", "averaged_effects.csv"):
            frame = folder.csv(name)
            if frame is not None:
                parts.append(f"<h3>{_e(folder.label)}/{_e(name)}</h3>" + _table(frame, 4))
    if not parts:
        return _absent("No comparison.csv in the folders (run vagg-bayes compare).")
    return "".join(parts)


def _scenario_tables(folder: ResultsFolder) -> list[tuple[str, pd.DataFrame]]:
    """(file name, table) of scenario.csv and of the tables a scenarios manifest lists."""
    names = ["scenario.csv"] + [f"{n}.csv" for n in folder.manifest.get("scenarios") or []
                                if isinstance(n, str)]
    out = []
    for name in dict.fromkeys(names):
        frame = folder.csv(name)
        if frame is not None:
            out.append((name, frame))
    return out


def _heterogeneity_section(ctx: _Context) -> str:
    parts = []
    rows: list[figures.Interval] = []
    sources = [(f, n, t) for f, n, t in ctx.effect_tables()]
    for folder in ctx.folders:
        sources += [(folder, n, t) for n, t in _scenario_tables(folder) if "effect" in t]
    for folder, name, frame in sources:
        moderated = frame[frame["effect"].astype(str).str.contains(r"\[", regex=True)]
        if not len(moderated):
            continue
        parts.append(f"<h3>{_e(folder.label)}/{_e(name)}: effects by level and contrasts"
                     "</h3>" + _table(moderated, 4))
        rows += [figures.Interval(f"{folder.label} | {r.effect}", float(r.mean),
                                  float(r.hdi_low), float(r.hdi_high), _kind(r.effect))
                 for r in moderated.itertuples(index=False)]
    if rows:
        parts.insert(0, _figure(figures.forest(rows, xlabel=ctx.axis),
                                "Effects at each moderator level and contrasts with the "
                                "reference level (94 % HDI)"))
    for folder in ctx.folders:
        for name in ("group_ranking.csv",):
            frame = folder.csv(name)
            if frame is None:
                continue
            shown = frame.head(_MAX_GROUPS)
            parts.append(f"<h3>{_e(folder.label)}/{_e(name)}</h3><p>First {len(shown)} of "
                         f"{len(frame)} rows, as in the file.</p>" + _table(shown, 4))
    if not parts:
        return _absent("No heterogeneity: no total[...] or contrast[...] rows (moderators) "
                       "and no group_ranking.csv in the folders.")
    return "".join(parts)


def _scenarios_section(ctx: _Context) -> str:
    parts = []
    for folder in ctx.folders:
        for name, frame in _scenario_tables(folder):
            if "group" not in frame:
                continue
            label = f"{folder.label}/{name}"
            what = folder.manifest.get("scenario") if name == "scenario.csv" else None
            groups = frame["group"].astype(str)
            overall = frame[groups == "all"]
            text = f"<h3>{_e(label)}</h3>"
            if what:
                text += f"<p>Scenario: {_e(what)}</p>"
            if len(overall):
                row = overall.iloc[0]
                d = decimals(row["sd"])
                text += (f"<p>Change in the mean of {_e(ctx.outcome)} over all rows: "
                         f"<b>{fmt(row['mean'], d)}</b> (94 % HDI {fmt(row['hdi_low'], d)} "
                         f"to {fmt(row['hdi_high'], d)}); P(&gt; 0) = "
                         f"{fmt_prob(row['prob_positive'])}.</p>")
            others = frame[groups != "all"]
            top = others.sort_values("mean", ascending=False).head(_MAX_GROUPS) \
                if "mean" in others else others.head(_MAX_GROUPS)
            shown = pd.concat([overall, top])
            if len(others) > len(top):
                text += (f"<p>Row all and the {len(top)} groups with the largest change "
                         f"(of {len(others)}).</p>")
            parts.append(text + _table(shown, 4))
    if not parts:
        return _absent("No scenario.csv in the folders (run vagg-bayes scenario).")
    return "".join(parts)


def _sensitivity_section(ctx: _Context) -> str:
    parts = []
    for folder in ctx.folders:
        frame = folder.csv("sensitivity.csv")
        if frame is not None:
            parts.append(f"<h3>{_e(folder.label)}/sensitivity.csv</h3><p>rho: correlation "
                         "of the mediator's and the outcome's errors at which the indirect "
                         "effect (rho_zero) or its 94 % HDI (rho_hdi_zero) reaches zero."
                         "</p>" + _table(frame, 4))
        if folder.has("sensitivity.png"):
            parts.append(_file_figure(folder.path / "sensitivity.png",
                                      f"{folder.label}: indirect effect of each mechanism "
                                      "against the error correlation rho"))
    if not parts:
        return _absent("No sensitivity.csv in the folders (written by estimate for specs "
                       "with mediators).")
    return "".join(parts)


def _failing(ctx: _Context) -> list[tuple[ResultsFolder, dict]]:
    out = []
    for folder in ctx.folders:
        found = folder.diagnostics()
        if found is not None and found[1].get("passed") is False:
            out.append((folder, found[1]))
    return out


def _banner(ctx: _Context) -> str:
    failing = _failing(ctx)
    if not failing:
        return ""
    problems = [(f.label, p) for f, d in failing
                for p in (d.get("problems") or ["diagnostics fail"])]
    items = "".join(f"<li>{_e(label)}: {_e(p)}</li>"
                    for label, p in problems[:_MAX_BANNER])
    if len(problems) > _MAX_BANNER:  # the headline stays on the first screen
        items += (f'<li>and {len(problems) - _MAX_BANNER} more (<a href="#diagnostics">'
                  "Diagnostics</a>)</li>")
    names = ", ".join(f.label for f, _ in failing)
    return (f'<div class="banner" id="diagnostics-banner">DIAGNOSTICS FAIL ({_e(names)}): '
            f"do not report these numbers as they are.<ul>{items}</ul></div>")


def _diagnostics_section(ctx: _Context) -> str:
    parts = []
    for folder in ctx.folders:
        found = folder.diagnostics()
        if found is None:
            continue
        source, diag = found
        status = "pass" if diag.get("passed") else "FAIL"
        keys = ("divergences", "max_r_hat", "min_ess_bulk", "min_ess_tail")
        frame = pd.DataFrame([{"equation": "all", "passed": bool(diag.get("passed")),
                               **{k: diag.get(k) for k in keys}}]
                             + [{"equation": name, "passed": bool(eq.get("passed")),
                                 **{k: eq.get(k) for k in keys}}
                                for name, eq in (diag.get("equations") or {}).items()])
        thresholds = diag.get("thresholds") or {}
        counted = any(diag.get(k) is not None for k in keys)
        text = (f"<h3>{_e(folder.label)}/{_e(source)}: {status}</h3>"
                + (_table(frame, 3) if counted else "")
                + (f"<p>Thresholds: {_e(', '.join(f'{k} {v}' for k, v in thresholds.items()))}"
                   "</p>" if thresholds else ""))
        for what in ("problems", "notes"):
            items = diag.get(what) or []
            if items:
                text += f"<p>{what.capitalize()}:</p><ul>" + "".join(
                    f"<li>{_e(p)}</li>" for p in items) + "</ul>"
        sampler = diag.get("sampler") or {}
        if sampler:
            text += f"<p>Sampler: {_e(', '.join(f'{k} {v}' for k, v in sampler.items()))}</p>"
        parts.append(text)
    if not parts:
        return _absent("No diagnostics in the folders (diagnostics.json, or the records "
                       "of a scenario, comparison or refutation run).")
    return "".join(parts)


def _manifest_section(ctx: _Context) -> str:
    parts = []
    for folder in ctx.folders:
        record = folder.manifest
        if not record:
            continue
        source = "manifest.json" if folder.has("manifest.json") else "refute_manifest.json"
        rows = []
        versions = record.get("versions") or {}
        if versions:
            rows.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
        for key in ("seed", "data_file", "data_file_sha256", "data_hash", "n_rows",
                    "n_groups", "platform"):
            if record.get(key) is not None:
                rows.append((key, record[key]))
        if record.get("command_line"):
            rows.append(("command line", " ".join(map(str, record["command_line"]))))
        settings = record.get("settings")
        if isinstance(settings, dict):
            rows.append(("settings", ", ".join(f"{k} {v}" for k, v in settings.items())))
        spec = folder.spec
        if spec:
            rows.append(("spec", ", ".join(f"{k} {v}" for k, v in spec.items()
                                           if v not in (None, [], ""))))
        body = "".join(f"<tr><th>{_e(k)}</th><td class=\"detail\">{_e(v)}</td></tr>"
                       for k, v in rows)
        parts.append(f"<h3>{_e(folder.label)}/{source}</h3><table>{body}</table>")
    if not parts:
        return _absent("No manifest.json in the folders.")
    return "".join(parts)


_BUILDERS = {"effects": _effects_section, "dag": _dag_section,
             "design": _design_section,
             "densities": _densities_section, "ppc": _ppc_section,
             "refutations": _refutations_section, "comparison": _comparison_section,
             "heterogeneity": _heterogeneity_section, "scenarios": _scenarios_section,
             "sensitivity": _sensitivity_section, "diagnostics": _diagnostics_section,
             "manifest": _manifest_section}


# --------------------------------------------------------------------------- page


def build_report(dirs) -> str:
    """The report of one or more results folders, as one self-contained HTML page.

    Parameters
    ----------
    dirs : sequence of str or pathlib.Path
        Results folders; each is followed by its nested results folders (the demo's
        ``mechanisms/`` and ``scenarios/``). The first folder's total effect is the
        headline.

    Returns
    -------
    str
        The page. Sections whose files are absent hold a one-line note.

    Raises
    ------
    DataError
        If a folder is not a results folder, or one of its tables cannot be read.
    """
    folders = collect_folders(dirs)
    ctx = _Context(folders)
    sentence, source = headline(folders)
    sections = []
    for ident, title in _SECTIONS:
        body = _BUILDERS[ident](ctx)
        sections.append(f'<section id="{ident}"><h2>{_e(title)}</h2>{body}</section>')
    effects = sections.pop(0)
    nav = "<nav>" + "".join(f'<a href="#{i}">{_e(t)}</a>' for i, t in _SECTIONS) + "</nav>"
    labels = ", ".join(f.label for f in folders)
    title = f"vagg_bayes report: {ctx.treatment} \u2192 {ctx.outcome}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>{_banner(ctx)}"
        f'<p class="headline" id="headline">{sentence}</p>'
        f'<p class="sub">{_e(source)} Results folders: {_e(labels)}.</p>'
        f"{effects}{nav}{''.join(sections)}</body></html>\n"
    )


def write_report(dirs, *, out: str | Path | None = None) -> Path:
    """Build the report of ``dirs`` and write it atomically.

    Parameters
    ----------
    dirs : sequence of str or pathlib.Path
        Results folders (see :func:`build_report`).
    out : str or pathlib.Path, optional
        The file to write; default ``report.html`` in the first folder.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    page = build_report(dirs)
    target = Path(out) if out is not None else Path(list(dirs)[0]) / REPORT_NAME
    return write_text(target, page)
