"""The simulated PSTN's rule book: patterns, precedence, the default table, the API's behaviour forms."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.pstn.rules import (
    DEFAULT_RULES,
    PRESETS,
    RuleBook,
    behaviour_to_dict,
    compile_pattern,
    parse_behaviour,
)
from gateway.uas import Answer, Reject, Ring


@pytest.mark.parametrize(("number", "preset"), [
    ("+14155550100", "answer"), ("+14155550101", "answer-hangup"), ("+442079460102", "ring-answer"),
    ("+14155550180", "ring"), ("+14155550404", "not-found"), ("+14155550480", "no-answer"),
    ("+14155550486", "busy"), ("+14155550503", "congestion"), ("+14155550603", "decline"),
])
def test_default_table(number: str, preset: str) -> None:
    rule, behaviour = RuleBook().match(number)
    assert rule is not None and rule.source == "default" and behaviour == PRESETS[preset]


def test_documented_defaults_mean_what_the_issue_says() -> None:
    book = RuleBook()
    assert book.match("+14155550486")[1] == Reject(486, "Busy Here")
    assert book.match("+14155550480")[1] == Reject(480, "Temporarily Unavailable", ring=30.0)
    assert book.match("+14155550404")[1] == Reject(404, "Not Found")
    assert book.match("+14155550100")[1] == Answer()
    assert book.match("+14155550101")[1] == Answer(hang_up_after=5.0)
    rule, fallback = book.match("+14155551234")
    assert rule is None and fallback == Answer()


def test_api_rules_come_first_then_specificity_then_the_newest() -> None:
    book = RuleBook()
    book.set_rule("+1415*", "busy")
    assert book.match("+14155550100")[1] == PRESETS["busy"]  # API before the default table
    book.set_rule("+1415555XXXX", "decline")
    assert book.match("+14155550100")[1] == PRESETS["decline"]  # more literal characters win
    book.set_rule("+1415555????", "congestion")
    assert book.match("+14155550100")[1] == PRESETS["congestion"]  # equal specificity: the newest
    assert book.match("+4420794600")[1] == Answer()  # nothing matches: the fallback
    book.set_rule("+1415*", "ring")  # replacing keeps one rule per pattern
    assert [r.pattern for r in book.rules() if r.source == "api"] == ["+1415555????", "+1415555XXXX", "+1415*"]
    assert book.remove_rule("+1415555????") and not book.remove_rule("+1415555????")
    assert book.match("+14155550100")[1] == PRESETS["decline"]
    assert book.clear() == 2
    assert book.rules() == list(sorted(DEFAULT_RULES, key=lambda r: -r.specificity))
    assert book.match("+14155550100")[1] == Answer()


def test_patterns_match_the_whole_number() -> None:
    regex, specificity = compile_pattern("*0486")
    assert regex.fullmatch("+14155550486") and not regex.fullmatch("+14155550486 ")
    assert not regex.fullmatch("+141555504860") and specificity == 4
    exact, _ = compile_pattern("+14155550100")
    assert exact.fullmatch("+14155550100") and not exact.fullmatch("14155550100")
    one, _ = compile_pattern("+1X")
    assert one.fullmatch("+17") and not one.fullmatch("+1+") and not one.fullmatch("+177")


@pytest.mark.parametrize("pattern", ["", "abc", "+", "1+2", "*0486;", "1" * 33, "+1 415"])
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        RuleBook().set_rule(pattern, "busy")


@pytest.mark.parametrize(("value", "expected"), [
    ("busy", Reject(486, "Busy Here")),
    ("  Answer ", Answer()),
    ({"action": "answer", "ring": 2, "hang_up_after": 10}, Answer(ring=2.0, hang_up_after=10.0)),
    ({"action": "reject", "status": 486}, Reject(486, "Busy Here")),
    ({"action": "reject", "status": 599, "reason": "Lab"}, Reject(599, "Lab")),
    ({"action": "reject", "status": 599}, Reject(599, "Rejected")),
    ({"action": "no-answer", "ring": 10}, Reject(480, "Temporarily Unavailable", ring=10.0)),
    ({"action": "busy", "status": 600}, Reject(600, "Busy Everywhere")),
    ({"action": "answer-hangup", "hang_up_after": 1.5}, Answer(hang_up_after=1.5)),
    ({"action": "ring"}, Ring()),
    (Ring(), Ring()),
])
def test_behaviour_forms(value: Any, expected: Any) -> None:
    assert parse_behaviour(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("hold music", "unknown behaviour"),
    (42, "preset name or a mapping"),
    ({"action": "reject"}, "needs a status"),
    ({"action": "reject", "status": True}, "integer"),
    ({"action": "reject", "status": 200}, "300–699"),
    ({"action": "reject", "status": 486, "reason": 5}, "reason"),
    ({"action": "reject", "status": 486, "hang_up_after": 3}, "no hang_up_after"),
    ({"action": "answer", "status": 486}, "no status"),
    ({"action": "answer", "ring": "soon"}, "seconds"),
    ({"action": "answer", "ring": -1}, "ring"),
    ({"action": "answer", "hang_up_after": 0}, "hang_up_after"),
    ({"action": "ring", "ring": 5}, "no other field"),
    ({"action": "transfer"}, "unknown action"),
    ({"action": "answer", "colour": "blue"}, "unknown behaviour field"),
])
def test_bad_behaviours_are_refused_with_a_reason(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_behaviour(value)


@pytest.mark.parametrize("decision", [*PRESETS.values(), Reject(599, "Lab", ring=1.5), Answer(ring=1)])
def test_behaviour_dicts_read_back(decision: Any) -> None:
    data = behaviour_to_dict(decision)
    assert data["description"] == decision.describe()
    data.pop("description")
    assert parse_behaviour(data) == decision


def test_rules_as_dicts_for_the_api() -> None:
    book = RuleBook()
    rule = book.set_rule("+44*", {"action": "reject", "status": 403}, note="no UK today")
    assert rule.to_dict() == {"pattern": "+44*", "source": "api", "note": "no UK today",
                              "behaviour": behaviour_to_dict(Reject(403, "Forbidden"))}
    with pytest.raises(ValueError, match="note"):
        book.set_rule("+44*", "busy", note="x" * 201)
