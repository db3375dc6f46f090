"""[variables] moderators: parsed, recorded, and kept out of the other roles."""

import pytest

from vagg_bayes.errors import SpecError
from vagg_bayes.spec import Spec, parse_spec


def _doc(**variables):
    return {"data": {"group": "city"},
            "variables": {"outcome": "y", "treatment": "t", **variables}}


def test_moderators_are_parsed_and_listed_among_the_columns():
    spec = parse_spec(_doc(controls=["own"], moderators=["own", "region"]))
    assert spec.moderators == ("own", "region")
    assert spec.columns == ["y", "t", "own", "region", "city"]
    assert spec.to_dict()["moderators"] == ["own", "region"]
    assert parse_spec(_doc(moderators="region")).moderators == ("region",)
    assert Spec(outcome="y", treatment="t").moderators == ()


@pytest.mark.parametrize("variables, role", [
    ({"moderators": ["t"]}, "treatment"),
    ({"moderators": ["y"]}, "outcome"),
    ({"mediators": ["m"], "moderators": ["m"]}, "mediators"),
    ({"moderators": ["city"]}, "group"),
])
def test_a_moderator_cannot_play_another_role(variables, role):
    with pytest.raises(SpecError, match=rf"moderators and as {role}\..*Remove"):
        parse_spec(_doc(**variables))


def test_a_moderator_listed_twice_is_an_error():
    with pytest.raises(SpecError, match="more than once"):
        parse_spec(_doc(moderators=["own", "own"]))


def test_moderators_must_be_a_list_of_names():
    with pytest.raises(SpecError, match=r"\[variables\].moderators.*list of column names"):
        parse_spec(_doc(moderators=[1]))
