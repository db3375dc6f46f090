"""Tests of DAG loading (vagg_bayes.graph.dag): parsing, errors, exports."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import networkx as nx
import pydot
import pytest

from vagg_bayes.errors import GraphError
from vagg_bayes.graph import CausalGraph, load_graph, parse_dot

MECHANISMS = Path(__file__).resolve().parents[2] / "models" / "mechanisms.dot"
MEDIATORS = ("m_cost", "m_speed", "m_supply", "m_transform", "m_spillover", "m_congestion")
FIRM_MEDIATORS = ("m_cost", "m_speed", "m_supply", "m_transform")
OUTCOMES = ("resilience", "survival")


@pytest.fixture(scope="module")
def mech() -> CausalGraph:
    return load_graph(MECHANISMS)


def write(tmp_path: Path, text: str, name: str = "g.dot") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the shipped mechanism DAG ---------------------------------------------------------------
def test_mechanisms_dot_is_read_by_pydot_and_networkx():
    (dot,) = pydot.graph_from_dot_file(str(MECHANISMS))
    assert dot.get_type() == "digraph"
    g = nx.DiGraph(nx.nx_pydot.read_dot(str(MECHANISMS)))
    assert nx.is_directed_acyclic_graph(g)
    assert "va" in g and "city_dev" in g


def test_mechanisms_dot_structure(mech):
    assert mech.latent == ("city_dev", "firm_quality")
    assert mech.unit_level == ("firm_quality",)
    assert "city_dev" not in mech.observed and "firm_quality" not in mech.observed
    assert mech.children("firm_quality") == tuple(sorted((*FIRM_MEDIATORS, *OUTCOMES)))
    assert mech.parents("firm_quality") == ()
    assert mech.parents("va") == ("city_dev", "region", "tel1984")
    assert mech.parents("gdp_pc_ln") == ("city_dev", "region")
    for m in MEDIATORS:
        assert "va" in mech.parents(m)
        assert {"region", "gdp_pc_ln"} <= set(mech.parents(m))
        assert set(OUTCOMES) <= set(mech.children(m))
    for m in FIRM_MEDIATORS:
        assert {"size_ln", "age_ln", "leverage", "ownership", "firm_quality"} <= set(
            mech.parents(m)
        )
    for m in ("m_spillover", "m_congestion"):
        assert not {"size_ln", "age_ln", "leverage", "ownership", "firm_quality"} & set(
            mech.parents(m)
        )
    for y in OUTCOMES:
        assert set(mech.parents(y)) == {
            "va", "region", "gdp_pc_ln", "size_ln", "age_ln", "leverage", "ownership",
            "shock_exposure", "firm_quality", *MEDIATORS,
        }  # fmt: skip
    # mediators are parallel
    assert not any(a in MEDIATORS and b in MEDIATORS for a, b in mech.edges)
    assert mech.children("tel1984") == ("va",)
    assert len(mech.edges) == 73


# -- parsing ----------------------------------------------------------------------------------
def test_parse_handles_subgraphs_chains_ports_quotes_and_pseudo_nodes():
    g = parse_dot(
        """strict digraph G {
            graph [rankdir=LR]; node [shape=box]; edge [color=gray];
            a -> {b c};  {d e} -> f;  g -> h -> i;
            subgraph cluster_x { j; k -> l; subgraph inner { m -> n } }
            "q r":p1 -> s:n;
            "u" [observed="no", label="hidden"];  u -> a;
            v [observed=false]; v -> a;
        }"""
    )
    assert {"node", "edge", "graph"}.isdisjoint(g.nodes)
    assert {("a", "b"), ("a", "c"), ("d", "f"), ("e", "f"), ("g", "h"), ("h", "i")} <= set(g.edges)
    assert {("k", "l"), ("m", "n"), ("q r", "s")} <= set(g.edges)
    assert "j" in g
    assert g.latent == ("u", "v")


def test_unit_level_latent_nodes():
    g = parse_dot(
        """digraph {
            grit [observed="no", level="unit"];   // a pupil's time-invariant grit
            "home env" [observed=no, level=UNIT];
            weather [observed="no"];
            grit -> {effort score};  "home env" -> score;  weather -> score;
            effort -> score;
        }"""
    )
    assert g.latent == ("grit", "home env", "weather")
    assert g.unit_level == ("grit", "home env")
    assert "unit_level=['grit', 'home env']" in repr(g)


def test_unit_level_on_observed_node_has_no_effect():
    g = parse_dot('digraph { gender [level="unit"]; gender -> score; }')
    assert g.latent == () and g.unit_level == ()


def test_unknown_level_value(tmp_path):
    path = write(tmp_path, 'digraph { q [observed="no", level="firm"]; q -> y; }', "lv.dot")
    with pytest.raises(
        GraphError,
        match=r"Node 'q' in graph file '.*lv\.dot' has level=\"firm\"; the only level "
        r"understood is \"unit\".*Set level=\"unit\" or remove the attribute",
    ):
        load_graph(path)


def test_unit_level_node_must_be_latent():
    with pytest.raises(GraphError, match=r"Unit-level node\(s\) 'a' are not latent"):
        CausalGraph([("a", "b")], unit_level=["a"])
    g = CausalGraph([("a", "b")], latent=["a"], unit_level=["a"])
    assert g.unit_level == ("a",)


def test_unit_level_counts_in_equality_pickle_and_dot():
    text = 'digraph { q [observed="no", level="unit"]; q -> x; q -> y; x -> y; }'
    unit = parse_dot(text)
    plain = parse_dot(text.replace(', level="unit"', ""))
    assert unit != plain
    assert unit.latent == plain.latent
    assert pickle.loads(pickle.dumps(unit)) == unit
    assert pickle.loads(pickle.dumps(unit)).unit_level == ("q",)
    assert copy.deepcopy(unit).unit_level == ("q",)
    assert hash(copy.deepcopy(unit)) == hash(unit)
    assert 'level="unit"' in unit.to_dot()
    assert parse_dot(unit.to_dot()) == unit
    with pytest.raises(AttributeError, match="immutable"):
        unit._unit_level = frozenset()


def test_observed_values_other_than_no_are_observed():
    g = parse_dot('digraph { a [observed="yes"]; b [observed=YES]; a -> b; }')
    assert g.latent == ()
    assert g.observed == ("a", "b")


def test_queries(mech):
    assert "m_cost" in mech.descendants("va")
    assert "resilience" in mech.descendants("va")
    assert "va" in mech.ancestors("resilience")
    assert mech.directed_path("tel1984", "resilience") == ("tel1984", "va", "resilience")
    assert mech.directed_path("resilience", "va") is None
    with pytest.raises(GraphError, match="'vaa' is not a node.*mechanisms.dot.*Nodes are: "):
        mech.descendants("vaa")


# -- errors -----------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    missing = tmp_path / "nope.dot"
    with pytest.raises(GraphError, match=r"nope\.dot' does not exist\. Pass the path"):
        load_graph(missing)


def test_unparsable_dot_names_the_file(tmp_path):
    path = write(tmp_path, "digraph { a -> ; }", "broken.dot")
    with pytest.raises(GraphError, match=r"broken\.dot' is not valid DOT: .*Expected"):
        load_graph(path)


def test_not_dot_at_all(tmp_path):
    path = write(tmp_path, "a -> b\n", "plain.dot")
    with pytest.raises(GraphError, match=r"plain\.dot' is not valid DOT"):
        load_graph(path)


def test_undirected_graph(tmp_path):
    path = write(tmp_path, "graph { a -- b; }", "undirected.dot")
    with pytest.raises(GraphError, match=r"undirected\.dot' holds an undirected graph.*digraph"):
        load_graph(path)


def test_cycle_is_named(tmp_path):
    path = write(tmp_path, "digraph { x -> y; a -> b; b -> c; c -> a; }", "cyclic.dot")
    with pytest.raises(GraphError, match=r"cyclic\.dot has a cycle: a -> b -> c -> a\. .*acyclic"):
        load_graph(path)


def test_self_loop_is_a_cycle():
    with pytest.raises(GraphError, match="cycle: a -> a"):
        parse_dot("digraph { a -> a; }")


def test_two_graphs_in_one_file(tmp_path):
    path = write(tmp_path, "digraph { a -> b } digraph { c -> d }", "two.dot")
    with pytest.raises(GraphError, match="holds 2 graphs"):
        load_graph(path)


def test_unknown_latent_node():
    with pytest.raises(GraphError, match="Latent node.*'zz'.*not nodes"):
        CausalGraph([("a", "b")], latent=["zz"])


# -- immutability and exports -----------------------------------------------------------------
def test_immutable(mech):
    with pytest.raises(AttributeError, match="immutable"):
        mech.source = None
    with pytest.raises(nx.NetworkXError):
        mech.dag.add_edge("resilience", "va")
    copy_ = mech.to_networkx()
    copy_.add_edge("resilience", "zzz")
    assert "zzz" not in mech


def test_copy_and_pickle(mech):
    assert copy.deepcopy(mech) == mech
    assert pickle.loads(pickle.dumps(mech)) == mech
    assert hash(copy.deepcopy(mech)) == hash(mech)


def test_to_gml_round_trip(mech):
    g = nx.parse_gml(mech.to_gml())
    assert sorted(g.edges) == list(mech.edges)
    assert {n for n, d in g.nodes(data=True) if d["observed"] == "no"} == {
        "city_dev",
        "firm_quality",
    }


def test_to_dot_round_trip(mech):
    assert parse_dot(mech.to_dot()) == mech
    assert parse_dot('digraph { "a b" -> "c\\"d"; }').to_dot().count('"a b"') == 2


def test_exports_are_deterministic(tmp_path, mech):
    shuffled = write(
        tmp_path,
        "digraph { " + " ".join(f"{a} -> {b};" for a, b in reversed(mech.edges))
        + ' city_dev [observed="no"]; firm_quality [observed="no", level="unit"]; }',
    )
    other = load_graph(shuffled)
    assert other == mech
    assert other.to_dot() == mech.to_dot()
    assert other.to_gml() == mech.to_gml()
