"""Any text through the shipped router: never an exception, always a valid, repeatable decision."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from knowledge.loading import Routing
from knowledge.router import Decision
from knowledge.rules import RoutingTable, load_rules

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = {"answer", "clarify", "escalate"}
# A routing call costs well under a millisecond: many more of these than of the other tests.
EXAMPLES = settings().max_examples * 3
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    # The routing is a session fixture, built once: it is not rebuilt per example on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _table_words() -> list[str]:
    """Every word in the shipped table as admins wrote it (keywords, examples, names, places)."""
    table = load_rules(ROOT / "routing_rules.yaml")
    phrases = [
        *table.escalation.person_phrases,
        *table.escalation.examples,
        *table.escalation.out_of_scope,
        *table.escalation.outside_places,
        *(department.name for department in table.departments),
    ]
    for rule in table.rules:
        phrases.extend(rule.keywords)
        phrases.extend(rule.examples)
    found = {word for phrase in phrases for word in re.findall(r"[^\W_]+", phrase)}
    return sorted(found)


WORDS = _table_words()


def _chars(low: int, high: int) -> st.SearchStrategy[str]:
    return st.characters(min_codepoint=low, max_codepoint=high, exclude_categories=())


# Every code point, lone surrogates included (a str can hold them; a bad terminal makes them).
any_character = st.characters(exclude_categories=())
hostile_character = st.one_of(
    _chars(0x0000, 0x001F),  # C0 controls, NUL included
    _chars(0x007F, 0x009F),  # DEL, C1 controls
    _chars(0x0300, 0x036F),  # combining diacritics
    _chars(0x0590, 0x05FF),  # Hebrew
    _chars(0x0600, 0x06FF),  # Arabic
    _chars(0x200B, 0x200F),  # zero-width, LRM/RLM
    _chars(0x202A, 0x202E),  # bidi embeddings and overrides
    _chars(0x2066, 0x2069),  # bidi isolates
    _chars(0xD800, 0xDFFF),  # surrogates
    _chars(0xFE00, 0xFE0F),  # variation selectors
    _chars(0x1F300, 0x1FAFF),  # emoji
    _chars(0x1F3FB, 0x1F3FF),  # skin tones
    st.sampled_from(["\ufeff", "\u2028", "\u2029", "\ufdfd", "\ufffd", "\U0010ffff"]),
)
whitespace = st.text(
    alphabet=st.sampled_from(" \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2003\u200b\u2028\u3000"),
    max_size=200,
)
separator = st.one_of(
    st.sampled_from([" ", " ", " ", "", "\n", "\t", "-", "/", ", ", "?", "\x00", "\u200b"]),
    hostile_character,
)
case_reference = st.builds(
    "{}{}-{}".format,
    st.sampled_from(["F-", "ärende ", "dnr ", "ansökan ", "ref ", ""]),
    st.integers(0, 9999),
    st.integers(0, 10**7),
)
swedish_mix = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(WORDS), hostile_character, case_reference),
        separator,
    ),
    max_size=40,
).map(lambda pairs: "".join(word + sep for word, sep in pairs))
short_text = st.one_of(
    st.text(alphabet=any_character, max_size=300),
    st.text(alphabet=hostile_character, max_size=300),
    swedish_mix,
    whitespace,
)
# Up to ~20,000 characters, built by repetition so that generating them stays cheap.
huge_text = st.builds(
    lambda unit, count, tail: (unit * count)[:20_000] + tail,
    short_text.filter(bool),
    st.integers(1, 20_000),
    short_text,
)
question_text = st.one_of(short_text, huge_text)


def assert_valid(decision: Decision, routing: Routing) -> None:
    """What holds for every decision the router makes, whatever the question."""
    table: RoutingTable = routing.table
    departments = {department.id for department in table.departments}
    assert decision.action in ACTIONS
    assert isinstance(decision.score, float)
    assert math.isfinite(decision.score) and 0.0 <= decision.score <= 1.0
    for candidate in decision.candidates:
        assert candidate.department in departments
        assert math.isfinite(candidate.score) and 0.0 <= candidate.score <= 1.0
    assert len(decision.candidates) <= max(table.thresholds.max_candidates, 3)
    if decision.action == "answer":
        assert decision.department in departments
    else:
        assert decision.department is None
        assert decision.article is None
    if decision.action == "clarify":
        assert 2 <= len(decision.candidates) <= table.thresholds.max_candidates
    if decision.rule is not None:
        assert decision.rule in {rule.id for rule in table.rules}
    if decision.article is not None:
        assert decision.article in routing.knowledge.ids
    assert decision.explanation
    # `concierge route --json` prints this; it must encode whatever the member typed.
    json.dumps(decision.to_json(), ensure_ascii=False).encode("utf-8")


@PROPERTY_SETTINGS
@given(question=question_text)
@example(question="")
@example(question="\x00")
@example(question="\ud800idrottshall\udfff")
@example(question="مرحبا، كيف نحجز قاعة رياضية لجمعيتنا؟")
@example(question="שלום, איך מזמינים אולם ספורט לעמותה?")
@example(question="a\u0301" * 10_000)
@example(question="Hur bokar vi en idrottshall? " * 700)
@example(question="\u202ehallen\u202c F-2026-0042")
def test_any_text_gets_a_valid_repeatable_decision(
    shipped_routing: Routing, question: str
) -> None:
    router = shipped_routing.router
    decision = router.route(question)
    assert_valid(decision, shipped_routing)
    assert router.route(question) == decision


@PROPERTY_SETTINGS
@given(
    question=question_text,
    category=st.one_of(
        st.sampled_from(["sports", "culture", "social", "seniors", "immigrant", "other"]),
        st.text(alphabet=any_character, max_size=30),
    ),
)
def test_any_text_with_any_category_gets_a_valid_decision(
    shipped_routing: Routing, question: str, category: str
) -> None:
    router = shipped_routing.router
    decision = router.route(question, category)
    assert_valid(decision, shipped_routing)
    assert router.route(question, category) == decision
    if category not in shipped_routing.table.categories:
        assert decision == router.route(question)


@PROPERTY_SETTINGS
@given(question=question_text)
def test_explain_and_rank_agree_with_the_decision(shipped_routing: Routing, question: str) -> None:
    router = shipped_routing.router
    decision, explanations = router.explain(question)
    assert decision == router.route(question)
    ranked = router.rank(question)
    scores = [candidate.score for candidate in ranked]
    assert all(math.isfinite(score) for score in scores)
    assert scores == sorted(scores, reverse=True)
    assert [e.department for e in explanations] == [c.department for c in ranked[:5]]
