"""Do the data contradict the DAG? Its implied conditional independences, tested.

A DAG implies that two observed variables that no arrow joins are independent given
some set of observed variables that d-separates them. ``graph_independence`` lists one
such statement per non-adjacent pair of observed variables -- given the empty set when
that d-separates them, else given a minimal separating set of observed variables
(``networkx.find_minimal_d_separator``; dagitty's "missing edge" basis) -- and tests
each against the data:

- both variables numeric: the partial correlation given the separating set (Fisher z);
  a categorical variable enters as its indicators (an F test of the block); pairs of
  two categorical variables are not tested;
- **panels**: when the model's unit effects identify slopes within units
  (``unit_effects`` ``"within"`` or ``"fixed"`` and repeated units), every column is
  demeaned within units and the time indicators join every conditioning set (two-way
  fixed effects, consistent with the model); unit-level latent nodes
  (``level="unit"``) are then adjusted for and leave the graph, and variables constant
  within units cannot be tested (they are said so). Without unit effects the time
  indicators still join every conditioning set;
- **clusters**: rows of one group (city) share city and city-year shocks, so with a
  group column the test is the cluster-robust (CR1) Wald test of the partial
  regression coefficient, with G - 1 degrees of freedom, instead of the row-count
  Fisher z, which would overstate the evidence;
- Holm's correction over all statements at 5 %.

**Rule.** The row fails when any implied independence is rejected (Holm-adjusted
p < 0.05) and names each; it passes when none is; it is inconclusive without a DAG or
when the DAG implies nothing testable among the observed columns. Nodes that are not
columns of the data are treated as latent.

May import: numpy, pandas, scipy, networkx, vagg_bayes.graph, vagg_bayes.refute.base.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vagg_bayes.refute.base import Context, Outcome, Row, register

#: Family-wise level of the Holm correction.
LEVEL = 0.05


@dataclass(frozen=True)
class Independence:
    """``a`` is independent of ``b`` given ``given`` (what the DAG implies)."""

    a: str
    b: str
    given: tuple[str, ...]

    def __str__(self) -> str:
        cond = f" | {', '.join(self.given)}" if self.given else ""
        return f"{self.a} _||_ {self.b}{cond}"


def implied_independences(graph, observed) -> list[Independence]:
    """List one implied conditional independence per non-adjacent observed pair.

    Parameters
    ----------
    graph : CausalGraph or networkx.DiGraph
    observed : iterable of str
        The nodes that are measured (data columns); all others are latent.

    Returns
    -------
    list of Independence
        Sorted by pair; the separating set is empty when that suffices, else a minimal
        one. Pairs that no set of observed nodes d-separates (adjacent, or joined
        through a latent common cause) are left out.
    """
    import networkx as nx

    from vagg_bayes.graph.dag import is_separated

    g = graph.dag if hasattr(graph, "dag") else graph
    nodes = sorted(set(observed) & set(g.nodes))
    out = []
    for a, b in itertools.combinations(nodes, 2):
        if g.has_edge(a, b) or g.has_edge(b, a):
            continue
        if is_separated(g, a, b, ()):
            out.append(Independence(a, b, ()))
            continue
        # a minimal separator among the observed nodes (van der Zander et al. 2019): a
        # set-valued construction, so the answer does not depend on iteration order
        sep = nx.find_minimal_d_separator(g, {a}, {b}, restricted=set(nodes) - {a, b})
        if sep is not None:
            out.append(Independence(a, b, tuple(sorted(sep))))
    return out


def _block(series: pd.Series) -> np.ndarray:
    """Turn a column into numbers: numeric as is, categorical as indicators (first level out)."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float)[:, None]
    values = series.astype(str).to_numpy()
    levels = sorted(set(values))
    return np.column_stack([(values == lev).astype(float) for lev in levels[1:]]) \
        if len(levels) > 1 else np.zeros((len(values), 0))


def _demean(M: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
    if codes is None:
        return M - M.mean(axis=0)
    counts = np.bincount(codes).astype(float)
    out = np.empty_like(M)
    for j in range(M.shape[1]):
        out[:, j] = M[:, j] - (np.bincount(codes, weights=M[:, j]) / counts)[codes]
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _residualise(Y: np.ndarray, S: np.ndarray) -> np.ndarray:
    if S.shape[1] == 0:
        return Y
    coef = np.linalg.lstsq(S, Y, rcond=None)[0]
    return Y - S @ coef


def _test(ra: np.ndarray, RB: np.ndarray, clusters: np.ndarray | None, dof: float):
    """Test ``ra`` (n,) against the block ``RB`` (n, q), both residualised.

    Returns (partial correlation or multiple R, statistic, p, method).
    """
    from scipy import stats

    q = RB.shape[1]
    coef = np.linalg.lstsq(RB, ra, rcond=None)[0]
    fitted = RB @ coef
    ss_a = float(ra @ ra)
    r2 = float(fitted @ fitted) / ss_a if ss_a > 0 else 0.0
    r = math.copysign(math.sqrt(max(r2, 0.0)), float(coef[0])) if q == 1 else math.sqrt(r2)
    if clusters is None:
        if q == 1:
            z = math.atanh(min(max(r, -0.999999), 0.999999)) * math.sqrt(max(dof - 2, 1.0))
            return r, z, float(2 * stats.norm.sf(abs(z))), "Fisher z"
        f = (r2 / q) / ((1 - r2) / max(dof - q, 1.0))
        return r, f, float(stats.f.sf(f, q, max(dof - q, 1.0))), "F test"
    resid = ra - fitted
    codes = pd.factorize(clusters)[0]
    G = int(codes.max()) + 1
    scores = np.zeros((G, q))
    np.add.at(scores, codes, RB * resid[:, None])
    bread = np.linalg.pinv(RB.T @ RB)
    n = len(ra)
    c = G / max(G - 1, 1) * (n - 1) / max(n - q - 1, 1)
    V = c * bread @ (scores.T @ scores) @ bread
    wald = float(coef @ np.linalg.pinv(V) @ coef) / q
    p = float(stats.f.sf(wald, q, max(G - 1, 1)))
    method = f"cluster-robust Wald ({G} clusters)"
    return r, (math.copysign(math.sqrt(wald), r) if q == 1 else wald), p, method


def check_independences(graph, data: pd.DataFrame, *, unit: str | None = None,
                       time: str | None = None, cluster: str | None = None,
                       within_units: bool = False, level: float = LEVEL) -> pd.DataFrame:
    """Test every conditional independence the DAG implies among the data's columns.

    Parameters
    ----------
    graph : CausalGraph
    data : DataFrame
        Columns named as the graph's nodes (others are ignored; missing nodes count as
        latent). Rows missing a used value are left out (``n`` says how many remain).
    unit, time : str, optional
        Unit and time columns: ``within_units`` demeans within ``unit``; ``time`` adds
        time indicators to every conditioning set.
    cluster : str, optional
        Column whose values are clusters for the cluster-robust test (the group).
    within_units : bool, default False
        Demean within units (the model's unit effects); unit-level latent nodes leave
        the graph.
    level : float, default 0.05
        Family-wise level of Holm's correction.

    Returns
    -------
    DataFrame
        One row per statement: ``independence, a, b, given, n, r, statistic, p_value,
        p_holm, rejected, method, note``. ``r`` is the partial correlation (the partial
        multiple correlation for a categorical variable). Untestable statements have
        NaN p-values and say why in ``note``.
    """
    import networkx as nx

    g = nx.DiGraph(graph.dag)
    latent = set(graph.latent)
    roles = {unit, time, cluster} - {None}
    if within_units:
        g.remove_nodes_from(set(getattr(graph, "unit_level", ())))
    observed = [v for v in g.nodes if v not in latent and v in data.columns and v not in roles]
    statements = implied_independences(g, observed)
    # rows with every used column present (a column outside the spec may have gaps)
    used = sorted({v for s in statements for v in (s.a, s.b, *s.given)} | roles)
    data = data.loc[data[used].notna().all(axis=1)].reset_index(drop=True)
    codes = None
    if within_units and unit is not None:
        keys = [unit] if cluster in (None, unit) else [cluster, unit]
        codes = data.groupby(keys, sort=True, observed=True).ngroup().to_numpy()
    absorbed = 0 if codes is None else int(codes.max()) + 1
    time_block = _block(data[time].astype(str)) if time is not None else np.zeros((len(data), 0))
    clusters = data[cluster].to_numpy() if cluster is not None else None

    blocks: dict[str, np.ndarray] = {}
    constant: set[str] = set()
    for v in {v for s in statements for v in (s.a, s.b, *s.given)}:
        raw = _block(data[v])
        dm = _demean(raw, codes)
        keep = np.sqrt((dm**2).sum(axis=0)) > 1e-9 * np.maximum(np.sqrt((raw**2).sum(axis=0)), 1)
        blocks[v] = dm[:, keep]
        if not keep.any():
            constant.add(v)
    time_dm = _demean(time_block, codes)

    records = []
    for s in statements:
        rec = {"independence": str(s), "a": s.a, "b": s.b, "given": ", ".join(s.given),
               "n": len(data), "r": math.nan, "statistic": math.nan, "p_value": math.nan,
               "method": "", "note": ""}
        a_cat = blocks[s.a].shape[1] != 1 or not _is_numeric(data[s.a])
        b_cat = blocks[s.b].shape[1] != 1 or not _is_numeric(data[s.b])
        if s.a in constant or s.b in constant:
            gone = [v for v in (s.a, s.b) if v in constant]
            rec["note"] = (f"not tested: {', '.join(gone)} constant within units (absorbed by "
                           "the unit effects)" if codes is not None
                           else f"not tested: {', '.join(gone)} constant")
            records.append(rec)
            continue
        if a_cat and b_cat:
            rec["note"] = "not tested: both variables categorical"
            records.append(rec)
            continue
        target, other = (s.b, s.a) if a_cat else (s.a, s.b)
        S = np.column_stack([time_dm, *[blocks[v] for v in s.given]]) if (
            s.given or time_dm.shape[1]) else np.zeros((len(data), 0))
        if codes is None:
            S = np.column_stack([np.ones(len(data)), S]) if S.shape[1] else np.ones((len(data), 1))
        ra = _residualise(blocks[target][:, 0], S)
        RB = _residualise(blocks[other], S)
        if float(ra @ ra) <= 1e-12 * len(ra) or float((RB**2).sum()) <= 1e-12 * len(ra):
            rec["note"] = "not tested: no variation left after conditioning"
            records.append(rec)
            continue
        rank = int(np.linalg.matrix_rank(S)) if S.shape[1] else 0
        dof = len(data) - absorbed - rank
        r, stat, p, method = _test(ra, RB, clusters, dof)
        rec.update(r=r, statistic=stat, p_value=p, method=method)
        records.append(rec)
    table = pd.DataFrame.from_records(
        records, columns=["independence", "a", "b", "given", "n", "r", "statistic", "p_value",
                          "method", "note"])
    tested = table["p_value"].notna().to_numpy()
    holm = np.full(len(table), math.nan)
    if tested.any():
        holm[tested] = _holm(table.loc[tested, "p_value"].to_numpy(dtype=float))
    table.insert(table.columns.get_loc("p_value") + 1, "p_holm", holm)
    table.insert(table.columns.get_loc("p_holm") + 1, "rejected",
                 np.where(tested, holm < level, False))
    return table


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def settings_for(context: Context) -> dict:
    """Read unit, time, cluster and demeaning off the fitted model."""
    spec = context.spec
    design = context.result.fits["outcome"].design
    within = design.unit_effects in ("within", "fixed") and spec.unit is not None
    panel = spec.unit is not None and spec.time is not None
    cluster = spec.group or (spec.unit if panel else None)
    return {"unit": spec.unit if within else None, "time": spec.time,
            "cluster": cluster, "within_units": within}


@register("graph_independence")
def graph_independence(context: Context) -> Outcome:
    """Test the DAG's implied conditional independences against the data (no refits).

    One row (effect ``"graph"``); ``notes["table"]`` holds every statement and its test.
    """
    import time as _time

    from vagg_bayes.graph import load_graph

    start = _time.perf_counter()
    spec = context.spec
    draws = np.asarray(context.result.effect_draws["total"], dtype=float)
    estimate = float(draws.mean())

    def row(verdict, detail, p=math.nan):
        return Row("graph_independence", "graph", estimate, math.nan, math.nan, math.nan,
                   verdict, detail, p_value=p, seconds=_time.perf_counter() - start)

    rule = ("fails when the data reject any conditional independence the DAG implies among "
            "the observed columns (one minimal separating set per non-adjacent pair; partial "
            "correlation, Fisher z, or cluster-robust by group; Holm at 5 %)")
    if spec.graph is None:
        return Outcome([row("inconclusive", f"{rule}; the spec names no DAG ([model].graph)")])
    graph = load_graph(spec.graph)
    how = settings_for(context)
    table = check_independences(graph, context.data, **how)
    tested = table[table["p_value"].notna()]
    setup = []
    if how["within_units"]:
        setup.append(f"demeaned within {spec.unit} (unit effects)")
    if how["time"]:
        setup.append(f"{spec.time} indicators in every conditioning set")
    if how["cluster"]:
        setup.append(f"clustered by {how['cluster']}")
    setup_text = f" [{'; '.join(setup)}]" if setup else ""
    if tested.empty:
        why = "; ".join(table["note"]) if len(table) else "no implied independence"
        return Outcome([row("inconclusive", f"{rule}{setup_text}; nothing testable: {why}")],
                       notes={"table": table})
    rejected = tested[tested["rejected"]]
    p_min = float(tested["p_holm"].min())
    if rejected.empty:
        text = (f"{rule}{setup_text}; {len(tested)} tested, none rejected "
                f"(smallest Holm p = {p_min:.3g})")
        verdict = "pass"
    else:
        named = "; ".join(f"{r.independence} (r = {r.r:.3f}, p_holm = {r.p_holm:.2g})"
                          for r in rejected.itertuples())
        text = f"{rule}{setup_text}; {len(tested)} tested, {len(rejected)} rejected: {named}"
        verdict = "fail"
    skipped = int(table["p_value"].isna().sum())
    if skipped:
        text += f"; {skipped} not testable (see notes)"
    return Outcome([row(verdict, text, p_min)], notes={"table": table})
