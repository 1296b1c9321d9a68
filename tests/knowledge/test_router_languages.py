"""The router on a table with Swedish, English and Arabic phrases: what a member gets in each."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge.router import Decision, Router
from knowledge.rules import parse_rules

TABLE = """\
version: 1
thresholds:
  answer: 0.45
  answer_margin: 0.1
  clarify: 0.25
  max_candidates: 3
escalation:
  person_phrases:
    sv: [prata med en människa]
    en: [talk to a person]
    ar: [أريد التحدث مع شخص, موظف حقيقي]
  examples:
    sv: [Vi har väntat länge på svar om vår ansökan.]
    en: [We applied weeks ago and nobody has answered.]
    ar: [قدمنا طلبا منذ أسابيع ولم يرد أحد]
  out_of_scope:
    en: [Tell me a joke.]
    ar: [احك لي نكتة, كيف أطبخ الأرز؟]
  outside_places:
    sv: [Malmö]
    ar: [مالمو]
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
    keywords:
      sv: [idrottshall, halltider]
      en: [sports hall]
      ar: [صالة رياضية, أوقات التدريب]
    examples:
      sv:
        - Hur bokar vi träningstider i en idrottshall?
        - Vi behöver fler halltider för vårt innebandylag.
      en:
        - How do we book training times in a sports hall?
        - Our team needs more evenings in the gym hall.
      ar:
        - كيف نحجز صالة رياضية لتدريب فريقنا؟
        - نحتاج أوقات تدريب إضافية في القاعة الرياضية
  - id: kulturstod
    department: kultur
    keywords:
      sv: [kulturstöd]
      en: [culture grant]
      ar: [الدعم الثقافي, منحة ثقافية]
    examples:
      sv:
        - Hur ansöker vår teaterförening om kulturstöd?
      en:
        - How does our theatre group apply for a culture grant?
      ar:
        - كيف تتقدم فرقتنا المسرحية على منحة ثقافية؟
        - هل يوجد دعم ثقافي لجوقة الجمعية؟
  - id: lokaler
    department: fastighet
    keywords:
      sv: [hyra lokal]
      en: [rent premises]
      ar: [استئجار مقر, عقد الإيجار]
    examples:
      sv:
        - Vi vill hyra en lokal av kommunen för vår förening.
      en:
        - We want to rent premises from the city for our club.
      ar:
        - نريد استئجار مقر من البلدية لجمعيتنا
        - التدفئة معطلة في المكان الذي نستأجره
"""


@cache
def router() -> Router:
    return Router.build(parse_rules(TABLE, "routing_rules.yaml"))


def route(question: str) -> Decision:
    return router().route(question)


@pytest.mark.parametrize(
    ("question", "department"),
    [
        pytest.param("كيف نحجز صالة رياضية للفريق؟", "fritid", id="arabic"),
        # diacritics, ه typed for ة, ى for ي, tatweel: the same words
        pytest.param("كَيفَ نَحجِزُ الصالهْ الرياضيه؟", "fritid", id="arabic-diacritics"),
        pytest.param("نريـــد أوقات تدريب للفريق", "fritid", id="arabic-tatweel"),
        pytest.param("هل هناك منحة ثقافية للجوقة؟", "kultur", id="arabic-culture"),
        pytest.param("نريد استئجار مقر لجمعيتنا", "fastighet", id="arabic-premises"),
        pytest.param("Where do we book a sports hall?", "fritid", id="english"),
        pytest.param("Var bokar vi en idrottshall?", "fritid", id="swedish"),
    ],
)
def test_a_question_reaches_its_department_in_each_language(
    question: str, department: str
) -> None:
    decision = route(question)
    assert decision.action == "answer", decision.explanation
    assert decision.department == department


@pytest.mark.parametrize(
    "question",
    [
        "أريد التحدث مع شخص من فضلك",
        "أُريدُ التَّحَدُّث مع شخصٍ",
        "هل يمكن أن أكلم موظفا حقيقيا؟",
        "Can I talk to a person, please?",
    ],
)
def test_a_request_for_a_person_escalates_in_each_language(question: str) -> None:
    decision = route(question)
    assert decision.action == "escalate"
    assert decision.reason == "person_request"


@pytest.mark.parametrize(
    "question",
    [
        "ما وضع ملف رقم 2026-1187؟",
        "بخصوص ملفنا ٢٠٢٦/٥٥، هل من جديد؟",
        "القضية F-2026-0042 ما زالت مفتوحة",
        "طلبنا رقم 2026-314 لم يرد عليه أحد",
    ],
)
def test_an_arabic_case_reference_escalates_as_a_follow_up(question: str) -> None:
    decision = route(question)
    assert decision.action == "escalate"
    assert decision.reason == "case_followup"


def test_a_year_after_an_arabic_application_is_not_a_case_number() -> None:
    assert route("كيف نقدم طلب منحة ثقافية لسنة 2026؟").reason != "case_followup"


@pytest.mark.parametrize("question", ["هل توجد صالة رياضية بمالمو؟", "صالة رياضية في مالمو"])
def test_an_arabic_place_name_outside_helsingborg_escalates(question: str) -> None:
    decision = route(question)
    assert decision.action == "escalate"
    assert decision.reason == "outside_place"


@pytest.mark.parametrize("question", ["احك لي نكتة عن القطط", "كيف أطبخ المعكرونة بالطماطم؟"])
def test_an_arabic_question_outside_the_table_is_not_answered(question: str) -> None:
    assert route(question).action != "answer"


def test_the_decision_names_the_language_the_question_is_written_in() -> None:
    assert route("كيف نحجز صالة رياضية؟").language == "ar"
    assert route("How do we book a sports hall?").language == "en"
    assert route("Hur bokar vi en idrottshall?").language == "sv"
    # the member's language decides only when the words do not tell
    assert router().route("LOK?", None, "ar").language == "ar"
    assert router().route("How do we book a sports hall?", None, "ar").language == "en"
    assert route("LOK?").language is None


def test_the_language_hint_does_not_change_the_route() -> None:
    for question in ("كيف نحجز صالة رياضية؟", "Where do we book a sports hall?", "halltider"):
        plain = route(question)
        for language in ("sv", "en", "ar"):
            hinted = router().route(question, None, language)
            assert (hinted.action, hinted.department, hinted.candidates) == (
                plain.action,
                plain.department,
                plain.candidates,
            )


_ARABIC_LETTERS = "".join(chr(code) for code in range(0x0600, 0x0700)) + " ،؟ـ0123456789ab"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=_ARABIC_LETTERS, max_size=300))
def test_any_arabic_text_gets_a_valid_decision(question: str) -> None:
    decision = route(question)
    assert decision.action in {"answer", "clarify", "escalate"}
    assert 0.0 <= decision.score <= 1.0
    if decision.action == "answer":
        assert decision.department in {"fritid", "kultur", "fastighet"}
