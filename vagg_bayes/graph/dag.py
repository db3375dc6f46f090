"""Causal graphs (DAGs) read from DOT files.

A mechanism DAG is written in Graphviz DOT, the format DoWhy reads and most DAG tools
(dagitty, Graphviz) write::

    digraph mechanisms {
        city_dev [observed="no"];      // latent: not a column of the data
        city_dev -> va;  city_dev -> gdp_pc_ln;
        va -> {m_cost m_speed} -> resilience;
    }

Node names are data column names. A node whose ``observed`` attribute is ``"no"``
(DoWhy's convention; ``"false"`` and ``"0"`` also count) is latent. A latent node may
also carry ``level="unit"``: a time-invariant, unobserved characteristic of the row
entity ([data].unit, e.g. a firm's quality)::

    firm_quality [observed="no", level="unit"];
    firm_quality -> {m_cost resilience};

Unit effects that identify slopes within units (``unit_effects = "within"`` or
``"fixed"``) adjust for such a node (see :mod:`vagg_bayes.graph.identify`). ``level`` has
no effect on an observed node (a measured column is adjusted for as a control); any
value other than ``"unit"`` is an error. Graph, node and edge attributes other than
``observed`` and ``level`` are kept for drawing but play no causal role.

:func:`load_graph` reads a file, :func:`parse_dot` a string; both return an immutable
:class:`CausalGraph` or raise :class:`~vagg_bayes.errors.GraphError` naming the file and
the fix (missing file, unparsable DOT, undirected graph, a cycle).

The d-separation helpers at the end (:func:`backdoor_graph`, :func:`is_separated`,
:func:`smallest_separator`, :func:`open_path`) work on plain ``networkx.DiGraph`` objects
and are what :mod:`vagg_bayes.graph.identify` builds its adjustment sets with.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from vagg_bayes.errors import GraphError

__all__ = [
    "CausalGraph",
    "backdoor_graph",
    "is_separated",
    "load_graph",
    "open_path",
    "parse_dot",
    "smallest_separator",
]

#: Values of the ``observed`` node attribute that mark a latent node.
LATENT_VALUES = frozenset({"no", "false", "0"})
#: Value of the ``level`` node attribute that marks a time-invariant unit characteristic.
UNIT_LEVEL = "unit"
_PSEUDO_NODES = frozenset({"node", "edge", "graph"})
#: Most candidate sets one search tests before falling back to networkx's minimal separator.
_MAX_CHECKS = 20_000
#: Most undirected paths inspected when naming an open back-door path.
_MAX_PATHS = 2_000
# networkx 3.3 renamed d_separated to is_d_separator and added find_minimal_d_separator
_is_d_separator = getattr(nx, "is_d_separator", None) or nx.d_separated
_find_minimal_d_separator = getattr(nx, "find_minimal_d_separator", None)


class CausalGraph:
    """An immutable directed acyclic graph with a set of latent nodes.

    Parameters
    ----------
    edges : iterable of (str, str)
        Directed edges ``(cause, effect)``.
    nodes : iterable of str, default ()
        Extra nodes (isolated ones, or to fix the order nothing depends on).
    latent : iterable of str, default ()
        Nodes that are not observed (not columns of the data).
    unit_level : iterable of str, default ()
        Latent nodes that are time-invariant characteristics of the unit (DOT attribute
        ``level="unit"``); unit effects can adjust for them.
    source : pathlib.Path or None, default None
        File the graph came from; used in messages only.

    Raises
    ------
    GraphError
        If the graph has a cycle, a latent node is not a node of the graph, or a
        unit-level node is not latent.

    Notes
    -----
    The wrapped :class:`networkx.DiGraph` is frozen (``nx.freeze``): read it through
    :attr:`dag`, never modify it. Every listing (:attr:`nodes`, :attr:`edges`,
    :meth:`parents`, ...) is sorted, so output built from it is the same on every run.
    """

    __slots__ = ("_dag", "_latent", "_source", "_unit_level")

    def __init__(
        self,
        edges: Iterable[tuple[str, str]],
        *,
        nodes: Iterable[str] = (),
        latent: Iterable[str] = (),
        unit_level: Iterable[str] = (),
        source: Path | None = None,
    ) -> None:
        dag = nx.DiGraph()
        dag.add_nodes_from(sorted(set(nodes)))
        edge_list = sorted({(str(a), str(b)) for a, b in edges})
        dag.add_nodes_from(sorted({n for e in edge_list for n in e} - set(dag.nodes)))
        dag.add_edges_from(edge_list)
        latent = frozenset(latent)
        where = f" in {source}" if source else ""
        unknown = sorted(latent - set(dag.nodes))
        if unknown:
            raise GraphError(
                f"Latent node(s) {', '.join(repr(u) for u in unknown)}{where} are not nodes of "
                "the graph. Add them with their arrows or drop them from the latent set."
            )
        unit_level = frozenset(unit_level)
        not_latent = sorted(unit_level - latent)
        if not_latent:
            raise GraphError(
                f"Unit-level node(s) {', '.join(repr(u) for u in not_latent)}{where} are not "
                "latent. level=\"unit\" marks an unobserved unit characteristic; mark them "
                "observed=\"no\" as well, or drop them from the unit-level set."
            )
        try:
            cycle = nx.find_cycle(dag)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            path = " -> ".join([cycle[0][0], *(b for _, b in cycle)])
            raise GraphError(
                f"The causal graph{where} has a cycle: {path}. A causal graph must be acyclic; "
                "remove or reverse one arrow of the cycle (for feedback over time, use "
                "time-indexed nodes such as x_lag -> y)."
            )
        for node in dag.nodes:
            dag.nodes[node]["observed"] = "no" if node in latent else "yes"
        self._dag = nx.freeze(dag)
        self._latent = latent
        self._unit_level = unit_level
        self._source = source

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_source"):  # fully built: immutable
            raise AttributeError(f"CausalGraph is immutable; cannot set '{name}'.")
        object.__setattr__(self, name, value)

    # -- read-only views ---------------------------------------------------------------
    @property
    def dag(self) -> nx.DiGraph:
        """The frozen :class:`networkx.DiGraph` (node attribute ``observed``: yes/no)."""
        return self._dag

    @property
    def source(self) -> Path | None:
        """The file the graph was read from, if any."""
        return self._source

    @property
    def nodes(self) -> tuple[str, ...]:
        """All node names, sorted."""
        return tuple(sorted(self._dag.nodes))

    @property
    def edges(self) -> tuple[tuple[str, str], ...]:
        """All edges ``(cause, effect)``, sorted."""
        return tuple(sorted(self._dag.edges))

    @property
    def observed(self) -> tuple[str, ...]:
        """Observed nodes (data columns), sorted."""
        return tuple(n for n in self.nodes if n not in self._latent)

    @property
    def latent(self) -> tuple[str, ...]:
        """Latent (unobserved) nodes, sorted."""
        return tuple(sorted(self._latent))

    @property
    def unit_level(self) -> tuple[str, ...]:
        """Latent nodes marked ``level="unit"`` (time-invariant unit characteristics), sorted."""
        return tuple(sorted(self._unit_level))

    def __contains__(self, node: object) -> bool:
        return node in self._dag

    def __len__(self) -> int:
        return self._dag.number_of_nodes()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CausalGraph):
            return NotImplemented
        return (self.nodes, self.edges, self._latent, self._unit_level) == (
            other.nodes,
            other.edges,
            other._latent,
            other._unit_level,
        )

    def __hash__(self) -> int:
        return hash((self.nodes, self.edges, self._latent, self._unit_level))

    def __repr__(self) -> str:
        where = f", source='{self._source}'" if self._source else ""
        unit = f", unit_level={list(self.unit_level)}" if self._unit_level else ""
        return (
            f"CausalGraph({len(self)} nodes, {self._dag.number_of_edges()} edges, "
            f"latent={list(self.latent)}{unit}{where})"
        )

    def __reduce__(self):
        return (_rebuild, (self.edges, self.nodes, self.latent, self._source, self.unit_level))

    # -- queries -----------------------------------------------------------------------
    def _check(self, node: str) -> None:
        if node not in self._dag:
            where = f" of {self._source}" if self._source else ""
            raise GraphError(
                f"'{node}' is not a node of the causal graph{where}. Nodes are: "
                f"{', '.join(self.nodes)}. Fix the name or add the node to the DOT file."
            )

    def parents(self, node: str) -> tuple[str, ...]:
        """Direct causes of ``node``, sorted."""
        self._check(node)
        return tuple(sorted(self._dag.predecessors(node)))

    def children(self, node: str) -> tuple[str, ...]:
        """Direct effects of ``node``, sorted."""
        self._check(node)
        return tuple(sorted(self._dag.successors(node)))

    def descendants(self, node: str) -> frozenset[str]:
        """Nodes reachable from ``node`` along arrows (``node`` itself excluded)."""
        self._check(node)
        return frozenset(nx.descendants(self._dag, node))

    def ancestors(self, node: str) -> frozenset[str]:
        """Nodes with a directed path into ``node`` (``node`` itself excluded)."""
        self._check(node)
        return frozenset(nx.ancestors(self._dag, node))

    def directed_path(self, source: str, target: str) -> tuple[str, ...] | None:
        """A shortest directed path ``source -> ... -> target`` (ties broken by name), or None."""
        self._check(source)
        self._check(target)
        if source == target:
            return (source,)
        # breadth-first search over sorted successors: deterministic shortest path
        parent: dict[str, str] = {}
        frontier = [source]
        seen = {source}
        while frontier:
            nxt: list[str] = []
            for u in frontier:
                for v in sorted(self._dag.successors(u)):
                    if v in seen:
                        continue
                    seen.add(v)
                    parent[v] = u
                    if v == target:
                        path = [v]
                        while path[-1] != source:
                            path.append(parent[path[-1]])
                        return tuple(reversed(path))
                    nxt.append(v)
            frontier = nxt
        return None

    # -- export ------------------------------------------------------------------------
    def to_networkx(self) -> nx.DiGraph:
        """A mutable copy as :class:`networkx.DiGraph` (node attribute ``observed``)."""
        return nx.DiGraph(self._dag)

    def to_gml(self) -> str:
        """The graph as a GML string, as DoWhy's ``CausalModel(graph=...)`` accepts.

        Nodes carry ``observed "yes"``/``"no"``; no other attributes (a ``label`` would
        rename nodes when DoWhy parses the GML).
        """
        clean = nx.DiGraph()
        for n in self.nodes:
            clean.add_node(n, observed="no" if n in self._latent else "yes")
        clean.add_edges_from(self.edges)
        return "\n".join(nx.generate_gml(clean))

    def to_dot(self) -> str:
        """The graph as a DOT ``digraph`` string.

        Sorted; latent nodes carry ``observed="no"``, unit-level ones also ``level="unit"``.
        """
        lines = ["digraph {"]
        for n in self.nodes:
            attr = ""
            if n in self._unit_level:
                attr = f' [observed="no", level="{UNIT_LEVEL}"]'
            elif n in self._latent:
                attr = ' [observed="no"]'
            lines.append(f"    {_quote(n)}{attr};")
        for a, b in self.edges:
            lines.append(f"    {_quote(a)} -> {_quote(b)};")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _rebuild(edges, nodes, latent, source, unit_level=()) -> CausalGraph:
    return CausalGraph(edges, nodes=nodes, latent=latent, unit_level=unit_level, source=source)


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- DOT parsing ---------------------------------------------------------------------------
def load_graph(path: str | Path) -> CausalGraph:
    """Read a causal graph from a DOT file.

    Parameters
    ----------
    path : str or pathlib.Path
        A Graphviz DOT file holding one ``digraph``.

    Returns
    -------
    CausalGraph

    Raises
    ------
    GraphError
        If the file is missing or unreadable, is not valid DOT, holds an undirected
        ``graph`` or more than one graph, or the graph has a cycle.
    """
    path = Path(path)
    if not path.is_file():
        raise GraphError(
            f"Graph file '{path}' does not exist. Pass the path of a DOT file, e.g. "
            "models/mechanisms.dot (in a spec, [model].graph is relative to the spec file)."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphError(
            f"Graph file '{path}' cannot be read as UTF-8 text ({exc}). Save it as a plain "
            "UTF-8 DOT file."
        ) from None
    return parse_dot(text, source=path)


def parse_dot(text: str, *, source: Path | None = None) -> CausalGraph:
    """Parse DOT text into a :class:`CausalGraph`.

    Parameters
    ----------
    text : str
        DOT source with exactly one ``digraph``.
    source : pathlib.Path or None, default None
        Where the text came from; used in messages only.

    Raises
    ------
    GraphError
        On invalid DOT, an undirected graph, more than one graph, a cycle, or a
        ``level`` attribute other than ``"unit"``.
    """
    import pydot

    what = f"Graph file '{source}'" if source else "The DOT text"
    log = io.StringIO()
    try:
        # pydot prints the parser's complaint to stdout; keep it for our message instead
        with contextlib.redirect_stdout(log):
            graphs = pydot.graph_from_dot_data(text)
    except Exception as exc:  # pyparsing raises several kinds
        graphs, log = None, io.StringIO(str(exc))
    if not graphs:
        lines = [ln.strip() for ln in log.getvalue().splitlines() if ln.strip()]
        detail = lines[-1] if lines else "no graph found"
        raise GraphError(
            f"{what} is not valid DOT: {detail}. Write one graph as "
            "'digraph { a -> b; b -> c; }' (see models/mechanisms.dot)."
        )
    if len(graphs) > 1:
        raise GraphError(
            f"{what} holds {len(graphs)} graphs; a causal graph file must hold exactly one "
            "'digraph { ... }'. Keep one and delete the others."
        )
    dot = graphs[0]
    if dot.get_type() != "digraph":
        raise GraphError(
            f"{what} holds an undirected graph ('graph {{ a -- b }}'); a causal graph must be "
            "directed. Write 'digraph { a -> b; }' with '->' arrows from cause to effect."
        )
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str]] = []
    _collect(dot, nodes, edges)
    latent = {
        n for n, attrs in nodes.items() if attrs.get("observed", "yes").lower() in LATENT_VALUES
    }
    unit_level = set()
    for n, attrs in sorted(nodes.items()):
        if "level" not in attrs:
            continue
        level = attrs["level"].strip().lower()
        if level != UNIT_LEVEL:
            raise GraphError(
                f"Node '{n}' in {what[0].lower() + what[1:]} has level=\"{attrs['level']}\"; "
                f"the only level understood is \"{UNIT_LEVEL}\" (a time-invariant, "
                "unobserved characteristic of the unit, e.g. "
                "firm_quality [observed=\"no\", level=\"unit\"]). Set level=\"unit\" or "
                "remove the attribute."
            )
        if n in latent:
            unit_level.add(n)
    return CausalGraph(edges, nodes=nodes, latent=latent, unit_level=unit_level, source=source)


def _strip(value: Any) -> str:
    s = str(value).strip()
    if len(s) >= 2 and s[0] == s[-1] == '"':
        s = s[1:-1].replace('\\"', '"')
    return s


def _node_name(raw: Any) -> str:
    """Node name without quotes or a ``:port`` suffix."""
    s = str(raw).strip()
    if s.startswith('"'):
        end = 1
        while end < len(s):
            if s[end] == "\\":
                end += 2
                continue
            if s[end] == '"':
                break
            end += 1
        return s[1:end].replace('\\"', '"')
    return s.split(":", 1)[0]


def _collect(g: Any, nodes: dict[str, dict[str, str]], edges: list[tuple[str, str]]) -> None:
    """Gather nodes (with attributes) and edges of a pydot graph, recursing into subgraphs."""
    for node in g.get_node_list():
        name = _node_name(node.get_name())
        if name in _PSEUDO_NODES:
            continue
        attrs = nodes.setdefault(name, {})
        attrs.update({str(k): _strip(v) for k, v in node.get_attributes().items()})
    for edge in g.get_edge_list():
        sources = _endpoint(edge.get_source(), nodes, edges)
        targets = _endpoint(edge.get_destination(), nodes, edges)
        for a in sources:
            for b in targets:
                edges.append((a, b))
    for sub in g.get_subgraph_list():
        _collect(sub, nodes, edges)


def _endpoint(
    end: Any, nodes: dict[str, dict[str, str]], edges: list[tuple[str, str]]
) -> list[str]:
    """Node names of an edge end: a node, or an anonymous subgraph ``{a b}``."""
    if not isinstance(end, Mapping):
        name = _node_name(end)
        nodes.setdefault(name, {})
        return [name]
    names: list[str] = []
    for raw, decls in end.get("nodes", {}).items():
        name = _node_name(raw)
        if name in _PSEUDO_NODES:
            continue
        attrs = nodes.setdefault(name, {})
        for decl in decls:
            attrs.update({str(k): _strip(v) for k, v in dict(decl.get("attributes", {})).items()})
        names.append(name)
    for points in end.get("edges", {}):
        a, b = (_node_name(p) for p in points)
        for n in (a, b):
            nodes.setdefault(n, {})
            names.append(n)
        edges.append((a, b))
    for subs in end.get("subgraphs", {}).values():
        for sub in subs:
            names.extend(_endpoint(sub, nodes, edges))
    return list(dict.fromkeys(names))


# -- d-separation helpers (used by identification) -----------------------------------------
def backdoor_graph(dag: nx.DiGraph, cause: str) -> nx.DiGraph:
    """A copy of ``dag`` without the arrows out of ``cause`` (Pearl's back-door graph)."""
    g = nx.DiGraph(dag)
    g.remove_edges_from(list(dag.out_edges(cause)))
    return g


def is_separated(g: nx.DiGraph, s: str, t: str, z: Iterable[str]) -> bool:
    """Whether ``z`` d-separates ``s`` from ``t`` in ``g`` (``s`` and ``t`` dropped from z)."""
    return _is_d_separator(g, {s}, {t}, set(z) - {s, t})


def smallest_separator(
    g: nx.DiGraph,
    s: str,
    t: str,
    *,
    candidates: Iterable[str],
    base: Iterable[str] = (),
    given: Iterable[str] = (),
) -> tuple[str, ...] | None:
    """The smallest set ``base | A`` (A drawn from ``candidates``) that, with ``given``,
    d-separates ``s`` from ``t`` in ``g``; None if there is none.

    Ties between sets of the same size are broken alphabetically, so the answer does not
    depend on iteration order or string hashing. ``given`` is conditioned on but not
    returned. Only ancestors of ``{s, t} | base | given`` are tried: every minimal
    separator lies among them, and one exists iff all allowed ancestors separate
    (van der Zander, Liskiewicz and Textor, 2019). Past ``_MAX_CHECKS`` candidate sets
    the search returns networkx's minimal (not minimum) separator instead.
    """
    base, given = set(base), set(given)
    include = base | given
    anc = include | {s, t}
    for n in list(anc):
        anc |= nx.ancestors(g, n)
    cands = sorted((set(candidates) & anc) - include - {s, t})
    if not is_separated(g, s, t, include | set(cands)):
        return None
    checks = 0
    for k in range(len(cands) + 1):
        for combo in itertools.combinations(cands, k):
            checks += 1
            if checks > _MAX_CHECKS and _find_minimal_d_separator is not None:
                z = _find_minimal_d_separator(
                    g, {s}, {t}, included=include, restricted=include | set(cands)
                )
                return None if z is None else tuple(sorted(set(z) - given))
            if is_separated(g, s, t, include | set(combo)):
                return tuple(sorted(base | set(combo)))
    return None  # pragma: no cover - unreachable after the existence check


def open_path(g: nx.DiGraph, s: str, t: str, z: Iterable[str], *, through: str) -> str | None:
    """A shortest path between ``s`` and ``t`` through ``through`` that is open given ``z``.

    Drawn with arrows, e.g. ``"x <- school -> y"``; None if there is none among the first
    ``_MAX_PATHS`` paths of the skeleton.
    """
    z = set(z)
    skeleton = nx.Graph()
    skeleton.add_nodes_from(sorted(g.nodes))
    skeleton.add_edges_from(sorted(g.edges))
    anc_z = set(z)
    for n in z:
        anc_z |= nx.ancestors(g, n)
    try:
        for i, path in enumerate(nx.shortest_simple_paths(skeleton, s, t)):
            if i >= _MAX_PATHS:
                break
            if through in path and _is_open(g, path, z, anc_z):
                return _draw(g, path)
    except nx.NetworkXNoPath:
        return None
    return None


def _is_open(g: nx.DiGraph, path: list[str], z: set[str], anc_z: set[str]) -> bool:
    for a, v, b in zip(path, path[1:], path[2:], strict=False):
        collider = g.has_edge(a, v) and g.has_edge(b, v)
        if collider and v not in anc_z:  # a collider blocks unless it or a descendant is in z
            return False
        if not collider and v in z:  # a chain or fork blocks when conditioned on
            return False
    return True


def _draw(g: nx.DiGraph, path: list[str]) -> str:
    out = path[0]
    for a, b in itertools.pairwise(path):
        out += f" -> {b}" if g.has_edge(a, b) else f" <- {b}"
    return out
