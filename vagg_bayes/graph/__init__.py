"""Causal graphs: DAG loading (DOT) and identification (DoWhy plus our path-specific rules).

Public surface::

    load_graph(path) -> CausalGraph          read a DOT file
    parse_dot(text, *, source=None)          parse DOT text
    check_spec(graph, spec) -> list[str]     raise GraphError on contradictions, return warnings
    identify(graph, spec, data=None)         -> Identification (adjustment sets, estimands)
"""

from vagg_bayes.graph.dag import CausalGraph, load_graph, parse_dot
from vagg_bayes.graph.identify import Identification, check_spec, identify

__all__ = ["CausalGraph", "Identification", "check_spec", "identify", "load_graph", "parse_dot"]
