"""The DAG's instrument conditions (vagg_bayes.graph.identify), checked before sampling."""

import pytest

from vagg_bayes.errors import GraphError
from vagg_bayes.graph import check_spec, parse_dot
from vagg_bayes.spec import Spec

# shops in towns: dose -> sales confounded by a latent 'mood'; 'lever' a valid instrument;
# 'rumour' reaches sales directly too; 'weather' shares a cause with sales; 'echo' follows
# dose; 'noise' is unrelated to dose
GRAPH = """digraph towns {
    mood [observed="no"];
    mood -> dose; mood -> sales;
    lever -> dose;
    rumour -> dose; rumour -> footfall -> sales;
    climate -> weather; climate -> sales; weather -> dose;
    dose -> echo;
    noise;
    size -> dose; size -> sales;
    dose -> sales;
}"""


def spec(*instrument, controls=("size",)):
    return Spec(outcome="sales", treatment="dose", controls=controls, instrument=instrument)


@pytest.fixture
def graph():
    return parse_dot(GRAPH)


def test_valid_instrument_passes(graph):
    warnings = check_spec(graph, spec("lever"))
    # the latent confounder leaves adjustment unidentified; the warning names the instrument
    assert any("lever" in w and "Instruments" in w for w in warnings)


def test_path_to_outcome_not_through_treatment(graph):
    with pytest.raises(GraphError, match=r"'rumour' has a path to the outcome 'sales' not "
                                         r"through the treatment 'dose'.*rumour -> footfall "
                                         r"-> sales.*exclusion"):
        check_spec(graph, spec("rumour"))


def test_common_cause_with_outcome_unless_controlled(graph):
    with pytest.raises(GraphError, match=r"'weather' shares an unblocked common cause.*"
                                         r"weather <- climate -> sales"):
        check_spec(graph, spec("weather"))
    check_spec(graph, spec("weather", controls=("size", "climate")))  # blocked: valid


def test_descendant_irrelevant_and_unknown_instruments(graph):
    with pytest.raises(GraphError, match=r"'echo' is a descendant of the treatment 'dose'"):
        check_spec(graph, spec("echo"))
    with pytest.raises(GraphError, match=r"'noise' has no directed path to the treatment.*"
                                         r"relevance"):
        check_spec(graph, spec("noise"))
    with pytest.raises(GraphError, match=r"Instrument 'ghost' .* is not a node"):
        check_spec(graph, spec("ghost"))
    with pytest.raises(GraphError, match=r"'mood' is named in the spec .*\(latent\)"):
        check_spec(graph, spec("mood"))


def test_every_listed_instrument_is_checked(graph):
    with pytest.raises(GraphError, match="'rumour'"):
        check_spec(graph, spec("lever", "rumour"))
