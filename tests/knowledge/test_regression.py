"""Regression check, change summary, anonymisation and suggestions from traffic."""

from __future__ import annotations

import threading
from pathlib import Path

from knowledge.evaluation import LabelledQuestion
from knowledge.loading import Routing
from knowledge.regression import Bars, anonymise, compare, table_changes
from knowledge.router import Router
from knowledge.rules import RoutingTable
from knowledge.suggest import TrafficQuestion, suggest

ROOT = Path(__file__).resolve().parents[2]


def moved(table: RoutingTable, rule_id: str, department: str) -> RoutingTable:
    rules = tuple(
        rule.model_copy(update={"department": department}) if rule.id == rule_id else rule
        for rule in table.rules
    )
    return table.model_copy(update={"rules": rules})


HALL_QUESTIONS = [
    LabelledQuestion("Hur bokar vi träningstider i en idrottshall?", ("skola_fritid",), 1),
    LabelledQuestion("Var hittar jag lediga halltider?", ("skola_fritid",), 2),
    LabelledQuestion("Hur söker vi kulturstöd?", ("kultur",), 3),
]


def test_a_rule_sent_to_the_wrong_department_is_held_back_with_the_questions(
    shipped_routing: Routing,
) -> None:
    wrong = Router.build(moved(shipped_routing.table, "halltider", "fastighet"))
    report = compare(shipped_routing.router, wrong, HALL_QUESTIONS)
    changed = {change.text: (change.old, change.new) for change in report.changes}
    assert changed["Var hittar jag lediga halltider?"] == ("skola_fritid", "fastighet")
    assert "Hur söker vi kulturstöd?" not in changed
    failures = report.failures(Bars())
    assert any("answer precision" in failure for failure in failures)
    summary = report.summary()
    assert "'Var hittar jag lediga halltider?' skola_fritid → fastighet" in summary
    assert "3 questions: 3 → " in summary


def test_the_same_table_passes_and_changes_nothing(shipped_routing: Routing) -> None:
    report = compare(shipped_routing.router, shipped_routing.router, HALL_QUESTIONS)
    assert report.changes == [] and report.failures(Bars()) == []


def test_table_changes_name_what_was_added_removed_and_edited(shipped_routing: Routing) -> None:
    table = shipped_routing.table
    last = table.rules[-1].id
    edited = moved(table, "halltider", "fastighet")
    fewer = edited.model_copy(update={"rules": edited.rules[:-1]})
    changes = table_changes(table, fewer)
    assert changes.rules_removed == (last,)
    assert changes.rules_edited == ("halltider",)
    assert not changes.departments_added and not changes.thresholds_changed
    assert table_changes(table, table).empty


def test_anonymise_masks_personal_details() -> None:
    masked = anonymise(
        "Ring mig på 070-123 45 67 eller anna.svensson@example.se, pnr 19850101-1234, "
        "ärende F-2026-0042, se https://example.se/x"
    )
    for secret in ("070", "anna.svensson", "19850101", "F-2026-0042", "https://"):
        assert secret not in masked
    assert "[telefon]" in masked and "[e-post]" in masked and "[ärende]" in masked


def test_suggestions_from_a_synthetic_traffic_log(shipped_routing: Routing) -> None:
    traffic = [
        TrafficQuestion("Kan vi boka padelbanan vid Olympia på söndagar?", "skola_fritid"),
        TrafficQuestion("Hur bokar man padelbanan för juniorer?", "skola_fritid"),
        TrafficQuestion("Finns det lediga tider på padelbanan i vinter?", "skola_fritid"),
        TrafficQuestion("Ring mig på 0701234567 om stadgarna", "stadsledning"),
    ]
    found = suggest(shipped_routing.table, shipped_routing.router, traffic, HALL_QUESTIONS)
    padel = next(p for p in found.proposals if p.department == "skola_fritid")
    assert "padelbanan" in padel.keywords
    assert len(padel.questions) == 3 and len(padel.examples) == 3
    assert padel.placed_after >= padel.placed_before and padel.placed_after == 3
    other = next(p for p in found.proposals if p.department == "stadsledning")
    assert all("0701234567" not in example for example in other.examples)
    assert found.effect is not None
    assert "padelbanan" in found.describe()


def test_routing_while_the_table_is_swapped_never_sees_half_a_table(
    shipped_routing: Routing,
) -> None:
    """Readers take the live router once per question; the swap is one reference assignment."""
    other = Router.build(moved(shipped_routing.table, "halltider", "fastighet"))
    holder = {"router": shipped_routing.router}
    errors: list[BaseException] = []
    results: set[str | None] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                decision = holder["router"].route("Var hittar jag lediga halltider?")
                results.add(decision.department)
            except BaseException as exc:  # noqa: BLE001 (any failure fails the test)
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for index in range(200):
        holder["router"] = other if index % 2 else shipped_routing.router
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results <= {"skola_fritid", "fastighet"}


def test_international_numbers_and_suggestion_texts_are_masked(shipped_routing: Routing) -> None:
    assert "[telefon]" in anonymise("Ring +46 70 123 45 67 i dag")
    traffic = [TrafficQuestion("Jag heter Anna, ring 0701234567 om padelbanan", "skola_fritid")]
    described = suggest(shipped_routing.table, shipped_routing.router, traffic, []).describe()
    assert "0701234567" not in described and "padelbanan" in described


def test_suggestions_from_arabic_traffic_go_to_the_arabic_examples(
    shipped_routing: Routing,
) -> None:
    traffic = [
        TrafficQuestion("هل يمكن حجز ملعب البادل يوم الأحد؟", "skola_fritid"),
        TrafficQuestion("كيف نحجز ملعب البادل للناشئين؟", "skola_fritid"),
        TrafficQuestion("هل توجد أوقات فارغة في ملعب البادل هذا الشتاء؟", "skola_fritid"),
    ]
    found = suggest(shipped_routing.table, shipped_routing.router, traffic, HALL_QUESTIONS)
    padel = next(p for p in found.proposals if p.department == "skola_fritid")
    assert padel.language == "ar"
    described = found.describe()
    assert "add examples (ar):" in described and "ملعب البادل" in described
    assert padel.placed_after >= padel.placed_before
