"""The router on a small routing table: the decision a member gets for a question."""

from __future__ import annotations

import json
import math
from functools import cache

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from knowledge.router import Decision, Router
from knowledge.rules import RoutingTable, parse_rules

ACTIONS = {"answer", "clarify", "escalate"}
JSON_KEYS = {"action", "department", "score", "candidates", "rule", "article", "explanation"}


def small_table() -> str:
    """Three departments, four rules with keywords and examples, escalation phrases."""
    return """\
version: 1
thresholds:
  answer: 0.5
  answer_margin: 0.05
  clarify: 0.25
  max_candidates: 3
escalation:
  person_phrases:
    - prata med en människa
    - talk to a human
  examples:
    - Vi har väntat länge på svar om vår ansökan.
    - Jag vill klaga på hur vi blev bemötta.
departments:
  - id: fritid
    name: Fritid Helsingborg
    contact: {phone: "042-10 00 00"}
  - id: kultur
    name: Kulturförvaltningen
    contact: {web: https://example.org/kultur}
  - id: fastighet
    name: Fastighetsförvaltningen
    contact: {phone: "042-10 00 01"}
rules:
  - id: halltider
    department: fritid
    article: boka-hall
    keywords: [idrottshall, halltider, träningstider]
    examples:
      - Hur bokar vi träningstider i en idrottshall?
      - Vi behöver fler halltider för vårt innebandylag.
      - Kan vår förening få tid i sporthallen på kvällarna?
  - id: lok_stod
    department: fritid
    keywords: [lok-stöd, aktivitetsstöd]
    examples:
      - Hur söker vi LOK-stöd för våra ungdomsaktiviteter?
  - id: kulturstod
    department: kultur
    keywords: [kulturstöd, arrangemangsstöd]
    examples:
      - Vi vill söka bidrag för en konsert i parken.
      - Hur ansöker vår teaterförening om kulturstöd?
      - Finns det stöd för att arrangera en utställning?
  - id: lokaler
    department: fastighet
    keywords: [hyra lokal, felanmälan]
    examples:
      - Vi vill hyra en lokal av kommunen för vår förening.
      - Dörren i lokalen vi hyr är trasig, vem fixar den?
      - Vi har tappat nyckeln till föreningslokalen.
"""


def table() -> RoutingTable:
    return parse_rules(small_table(), "routing_rules.yaml")


@cache
def router() -> Router:
    return Router.build(table())


def assert_sane(decision: Decision) -> None:
    """What must hold for every decision, whatever the question."""
    assert isinstance(decision, Decision)
    assert decision.action in ACTIONS
    assert isinstance(decision.score, float)
    assert math.isfinite(decision.score)
    assert 0.0 <= decision.score <= 1.0
    shown = decision.to_json()
    assert set(shown) == JSON_KEYS
    json.loads(json.dumps(shown))
    json.loads(json.dumps(shown, ensure_ascii=False))
    departments = {department.id for department in table().departments}
    for candidate in decision.candidates:
        assert candidate.department in departments
        assert math.isfinite(candidate.score) and 0.0 <= candidate.score <= 1.0
    if decision.action == "answer":
        assert decision.department in departments
    else:
        assert decision.department is None
    if decision.action == "clarify":
        assert 2 <= len(decision.candidates) <= table().thresholds.max_candidates


# ---------------------------------------------------------------------------------------------
# Answers


def test_keyword_question_answers_the_department_and_names_the_rule() -> None:
    decision = router().route("Hur bokar vi en idrottshall till vårt lag?")
    assert decision.action == "answer"
    assert decision.department == "fritid"
    assert decision.rule == "halltider"
    assert decision.article == "boka-hall"
    assert "halltider" in decision.explanation
    assert decision.candidates[0].department == "fritid"


@pytest.mark.parametrize(
    ("question", "department"),
    [
        pytest.param("Hur bokar vi en idrotshall?", "fritid", id="typo"),
        pytest.param("HALLTIDER!!!", "fritid", id="shouting"),
        pytest.param("Hur soker vi LOK-stod?", "fritid", id="no-diacritics"),
        pytest.param("Vi soker kulturstod for en konsert", "kultur", id="no-diacritics-2"),
        pytest.param("arrangemangsstödet", "kultur", id="inflected-keyword"),
        pytest.param("Vi vill hyra lokaler", "fastighet", id="plural"),
        pytest.param("Lokalerna vi hyr har en trasig dörr", "fastighet", id="definite-plural"),
    ],
)
def test_spelling_variants_still_reach_the_department(question: str, department: str) -> None:
    decision = router().route(question)
    assert (decision.action, decision.department) == ("answer", department), decision.explanation


# ---------------------------------------------------------------------------------------------
# Escalations


@pytest.mark.parametrize(
    "question",
    [
        "Kan jag få prata med en människa?",
        "kan jag prata med en manniska om halltider",
        "I want to talk to a human, please",
    ],
)
def test_request_for_a_person_escalates(question: str) -> None:
    decision = router().route(question)
    assert decision.action == "escalate"
    assert decision.reason == "person_request"
    assert decision.department is None


@pytest.mark.parametrize(
    "question",
    ["Hur går det med ärende 2026-1187?", "arende 2026-1187", "Gäller ärendenr 2026-1187"],
)
def test_case_number_escalates_as_a_follow_up(question: str) -> None:
    decision = router().route(question)
    assert decision.action == "escalate"
    assert decision.reason == "case_followup"


def test_a_year_after_ansokan_is_not_a_case_number() -> None:
    # "ansökan 2026" is the application round of a year, not a case reference.
    decision = router().route("När öppnar ansökan 2026 för kulturstöd?")
    assert decision.reason != "case_followup", decision.explanation
    assert (decision.action, decision.department) == ("answer", "kultur")


@pytest.mark.parametrize(
    "question", ["Hur lagar man köttbullar?", "What is the weather like in Paris tomorrow?"]
)
def test_out_of_scope_question_is_not_answered(question: str) -> None:
    decision = router().route(question)
    assert decision.action != "answer", decision.explanation
    assert_sane(decision)


# ---------------------------------------------------------------------------------------------
# Shape and determinism

QUESTIONS = [
    "Hur bokar vi en idrottshall?",
    "Vi söker stöd till föreningen",
    "bidrag till lokal",
    "tider",
    "Hur lagar man köttbullar?",
    "Kan jag prata med en människa?",
    "",
]


def test_route_is_deterministic_across_builds() -> None:
    first, second = Router.build(table()), Router.build(table())
    assert [first.route(q).to_json() for q in QUESTIONS] == [
        second.route(q).to_json() for q in QUESTIONS
    ]


def test_to_json_shape() -> None:
    shown = router().route("Hur bokar vi en idrottshall?").to_json()
    assert set(shown) == JSON_KEYS
    assert shown["action"] == "answer"
    assert shown["department"] == "fritid"
    assert isinstance(shown["score"], float)
    assert isinstance(shown["candidates"], list) and shown["candidates"]
    for candidate in shown["candidates"]:
        assert set(candidate) == {"department", "score"}
        assert isinstance(candidate["department"], str)
        assert isinstance(candidate["score"], float)
    assert shown["rule"] == "halltider"
    assert shown["article"] == "boka-hall"
    assert isinstance(shown["explanation"], str) and shown["explanation"]


def test_clarify_offers_between_two_and_max_candidates() -> None:
    decisions = [router().route(q) for q in QUESTIONS + ["stöd", "hallen", "förening", "lokal"]]
    clarifications = [d for d in decisions if d.action == "clarify"]
    assert clarifications, "no question of the sample was a close call; adjust the sample"
    for decision in clarifications:
        assert 2 <= len(decision.candidates) <= table().thresholds.max_candidates
        assert decision.department is None
        assert decision.rule is None


def test_clarify_respects_max_candidates_of_two() -> None:
    text = small_table().replace("max_candidates: 3", "max_candidates: 2")
    narrow = Router.build(parse_rules(text, "routing_rules.yaml"))
    for question in QUESTIONS + ["stöd", "hallen", "förening", "lokal"]:
        decision = narrow.route(question)
        if decision.action == "clarify":
            assert len(decision.candidates) == 2


# ---------------------------------------------------------------------------------------------
# Any text at all

HOSTILE = [
    "",
    " ",
    "\n\t\r  \n",
    "x" * 20_000,
    "halltider " * 2_000,
    "Hur bokar vi en idrottshall? " * 700,
    "🙂🎉👍🏽",
    "\U0001f3d0" * 500,
    "\x00",
    "halltider\x00kulturstöd",
    "\x01\x02\x1b[31mröd\x1b[0m\x7f",
    "مرحبا، كيف نحجز قاعة رياضية لجمعيتنا؟",
    "שלום, איך מזמינים אולם ספורט לעמותה?",
    "\u202ellahstlloh\u202c",
    "Hur bokar vi 体育馆 в спортзале? idrottshall",
    "a\u0301" * 5_000,
    "\ufeff\u200b\u200d\u2060",
    "\ud800",
    "idrottshall\udfff",
    "ärende",
    "-" * 3000 + "2026-1187",
    "ﷺ﷽" * 100,
]


@pytest.mark.parametrize("question", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_gets_a_sane_decision(question: str) -> None:
    assert_sane(router().route(question))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.sampled_from(HOSTILE)))
@example("")
@example("\ud800")
def test_any_text_gets_a_sane_decision(question: str) -> None:
    assert_sane(router().route(question))


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzåäö -"), max_size=60))
def test_swedish_looking_text_gets_a_sane_decision(question: str) -> None:
    assert_sane(router().route(question))
