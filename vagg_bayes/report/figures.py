"""The report's figures, drawn with matplotlib (Agg, no pyplot state) into PNG bytes.

Each function takes numbers already read from a results folder and returns the PNG file's
bytes, which :mod:`vagg_bayes.report.html` embeds as a ``data:`` URI. Nothing is
estimated here: means and intervals come from the folder's tables.

May import: numpy, scipy (lazily), matplotlib (lazily), networkx (lazily), ``graph.dag``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

#: Colours of the kinds of effect (total, direct, indirect) and of the DAG's roles.
COLOURS = {"total": "#1b1b1b", "direct": "#1f5fa8", "indirect": "#d9730d",
           "other": "#6b6b6b", "treatment": "#1f5fa8", "outcome": "#b8322a",
           "mediator": "#d9730d", "latent": "#bdbdbd", "node": "#e8e8e8"}


@dataclass(frozen=True)
class Interval:
    """One row of a forest plot: a label, the posterior mean and its 94 % HDI."""

    label: str
    mean: float
    low: float
    high: float
    kind: str = "other"  # total | direct | indirect | other


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def effect_kind(name: str) -> str:
    """``total``, ``direct``, ``indirect`` (also ``indirect:<m>``) or ``other``."""
    head = name.split("[", 1)[0].split(":", 1)[0]
    return head if head in ("total", "direct", "indirect") else "other"


def forest(rows: list[Interval], *, xlabel: str, width: float | None = None) -> bytes:
    """Posterior means with 94 % HDIs, one line per row, top to bottom, zero marked.

    Rows are grouped by the part of their label before `` | `` (a folder), each group
    under a light rule.
    """
    n = len(rows)
    if width is None:  # room for the longest label beside an axis of about 4.5 inches
        width = min(10.4, 4.8 + 0.068 * max(len(r.label) for r in rows))
    fig = _figure(width, 0.8 + 0.3 * max(n, 2))
    ax = fig.add_subplot()
    y = np.arange(n)[::-1]
    for yk, row in zip(y, rows, strict=True):
        colour = COLOURS.get(row.kind, COLOURS["other"])
        ax.plot([row.low, row.high], [yk, yk], color=colour, lw=2.2, solid_capstyle="butt")
        ax.plot(row.mean, yk, "o", color=colour, ms=6)
    ax.axvline(0.0, color="#999999", lw=1, ls="--", zorder=0)
    ax.set_yticks(y, [r.label for r in rows])
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", color="#eeeeee")
    ax.spines[["top", "right"]].set_visible(False)
    for k in range(1, n):  # a rule between folders
        if rows[k].label.split(" | ")[0] != rows[k - 1].label.split(" | ")[0]:
            ax.axhline(y[k] + 0.5, color="#dddddd", lw=0.8)
    return _png(fig)


def densities(draws: dict[str, np.ndarray], intervals: dict[str, Interval], *,
              xlabel: str, columns: int = 3) -> bytes:
    """One small panel per effect: kernel density of the draws, the HDI shaded.

    Parameters
    ----------
    draws : mapping of str -> ndarray
        Effect name -> its posterior draws (any shape; flattened).
    intervals : mapping of str -> Interval
        Effect name -> mean and HDI as written in ``effects.csv`` (shaded, not
        recomputed).
    """
    from scipy.stats import gaussian_kde

    names = list(draws)
    cols = min(columns, len(names))
    rows = -(-len(names) // cols)
    fig = _figure(2.7 * cols, 1.9 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        x = np.asarray(draws[name], dtype=float).ravel()
        x = x[np.isfinite(x)]
        colour = COLOURS.get(effect_kind(name), COLOURS["other"])
        span = x.max() - x.min() if x.size else 0.0
        if x.size > 1 and span > 0:
            grid = np.linspace(x.min() - 0.1 * span, x.max() + 0.1 * span, 256)
            dens = gaussian_kde(x)(grid)
            ax.plot(grid, dens, color=colour, lw=1.5)
            box = intervals.get(name)
            if box is not None:
                inside = (grid >= box.low) & (grid <= box.high)
                ax.fill_between(grid[inside], dens[inside], color=colour, alpha=0.25, lw=0)
                ax.axvline(box.mean, color=colour, lw=1)
        elif x.size:
            ax.axvline(x[0], color=colour, lw=1.5)
        lo, hi = ax.get_xlim()
        if lo < 0 < hi:
            ax.axvline(0.0, color="#999999", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_yticks([])
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right", "left"]].set_visible(False)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig.supxlabel(xlabel, fontsize=9)
    return _png(fig)


def _layers(dag) -> dict[str, int]:
    """Each node's layer: the length of the longest directed path that reaches it."""
    import networkx as nx

    layer: dict[str, int] = {}
    for node in nx.topological_sort(dag):
        layer[node] = max((layer[p] + 1 for p in dag.predecessors(node)), default=0)
    return layer


def dag(graph, *, treatment: str | None, outcome: str | None,
        mediators: tuple[str, ...] = ()) -> bytes:
    """The causal graph, left to right by layer; treatment, mediators, outcome coloured.

    Edges on a directed path from the treatment to the outcome are drawn dark, the rest
    light; latent nodes are grey with a dashed outline. Drawn with networkx and
    matplotlib (no Graphviz binary needed).

    Parameters
    ----------
    graph : vagg_bayes.graph.dag.CausalGraph
    """
    import networkx as nx

    g = graph.dag
    layer = _layers(g)
    by_layer: dict[int, list[str]] = {}
    for node in sorted(g.nodes, key=lambda v: (layer[v], v)):
        by_layer.setdefault(layer[node], []).append(node)
    tallest = max(len(v) for v in by_layer.values())
    pos = {}
    for k, nodes in by_layer.items():
        for j, node in enumerate(nodes):
            pos[node] = (float(k), (len(nodes) - 1) / 2.0 - j)
    on_path: set[tuple[str, str]] = set()
    if treatment in g and outcome in g:
        between = (nx.descendants(g, treatment) | {treatment}) & \
            (nx.ancestors(g, outcome) | {outcome})
        on_path = {(a, b) for a, b in g.edges if a in between and b in between}
    latent = set(graph.latent)
    colour = {}
    for node in g.nodes:
        colour[node] = (COLOURS["treatment"] if node == treatment else
                        COLOURS["outcome"] if node == outcome else
                        COLOURS["mediator"] if node in mediators else
                        COLOURS["latent"] if node in latent else COLOURS["node"])
    fig = _figure(max(6.0, 1.9 * len(by_layer)), max(3.0, 0.42 * tallest + 0.8))
    ax = fig.add_subplot()
    rest = [e for e in g.edges if e not in on_path]
    style = {"ax": ax, "node_size": 1600, "arrowstyle": "-|>"}
    nx.draw_networkx_edges(g, pos, edgelist=rest, edge_color="#cccccc", width=0.7,
                           arrowsize=7, **style)
    nx.draw_networkx_edges(g, pos, edgelist=sorted(on_path), edge_color="#333333",
                           width=1.4, arrowsize=11, **style)
    light = {treatment, outcome}
    for node, (x, y) in pos.items():  # each node a box around its name
        ax.text(x, y, node, ha="center", va="center", fontsize=7.5, zorder=5,
                color="white" if node in light else "black",
                bbox={"boxstyle": "square,pad=0.3" if node in latent else "round,pad=0.3",
                      "fc": colour[node], "ec": "#555555", "lw": 0.6,
                      "ls": "--" if node in latent else "-"})
    ax.set_axis_off()
    ax.margins(0.08)
    return _png(fig)
