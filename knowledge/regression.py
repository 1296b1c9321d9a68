"""Seeing a routing change before it goes live: two tables side by side on a question set.

``compare`` routes every question with the live and the new router and lists the figures of
both and every question whose route changes; ``table_changes`` says what an admin changed
(departments and rules added, removed, edited); ``anonymise`` masks personal details in a
question before it joins the project's question set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from knowledge.evaluation import Figures, LabelledQuestion, evaluate
from knowledge.router import Decision, Router
from knowledge.rules import RoutingTable


def route_label(decision: Decision) -> str:
    """A decision in a few words: ``skola_fritid``, ``clarify kultur/miljo``, ``escalate``."""
    if decision.action == "answer":
        return decision.department or "?"
    if decision.action == "clarify":
        return "clarify " + "/".join(c.department for c in decision.candidates)
    return "escalate"


@dataclass(frozen=True)
class RouteChange:
    text: str
    expect: tuple[str, ...]
    old: str
    new: str
    old_correct: bool
    new_correct: bool


@dataclass(frozen=True)
class Bars:
    """When a change is held back: below these, or worse than the live table by more."""

    min_correct: float = 0.85
    min_answer_precision: float = 0.97
    max_drop: float = 0.01


@dataclass
class RegressionReport:
    old: Figures
    new: Figures
    changes: list[RouteChange] = field(default_factory=list)

    def failures(self, bars: Bars) -> list[str]:
        """Why the change should be held back (empty: it may go live)."""
        found = []
        for name, bar, label in (
            ("correct", bars.min_correct, "correct"),
            ("answer_precision", bars.min_answer_precision, "answer precision"),
        ):
            old_value = getattr(self.old, name)
            new_value = getattr(self.new, name)
            if new_value < bar:
                found.append(f"{label} {new_value:.3f} is below the bar {bar:.2f}")
            elif new_value < old_value - bars.max_drop:
                found.append(f"{label} falls from {old_value:.3f} to {new_value:.3f}")
        return found

    def summary(self, limit: int = 15) -> str:
        """“95 → 88 correct; answer precision 1.000 → 0.912” and the questions that move."""
        old_correct = sum(o.correct for o in self.old.outcomes)
        new_correct = sum(o.correct for o in self.new.outcomes)
        lines = [
            f"{self.old.total} questions: {old_correct} → {new_correct} correct; answer precision "
            f"{self.old.answer_precision:.3f} → {self.new.answer_precision:.3f}; helped "
            f"{self.old.helped:.3f} → {self.new.helped:.3f}; wrong answers "
            f"{self.old.wrong_answers:.3f} → {self.new.wrong_answers:.3f}"
        ]
        if not self.changes:
            lines.append("No question changes route.")
        else:
            worse = [c for c in self.changes if c.old_correct and not c.new_correct]
            lines.append(
                f"{len(self.changes)} questions change route ({len(worse)} for the worse):"
            )
            ordered = sorted(self.changes, key=lambda c: not (c.old_correct and not c.new_correct))
            for change in ordered[:limit]:
                mark = (
                    "✗"
                    if change.old_correct and not change.new_correct
                    else ("✓" if change.new_correct and not change.old_correct else "·")
                )
                lines.append(f"{mark} '{_short(change.text)}' {change.old} → {change.new}")
            if len(ordered) > limit:
                lines.append(f"… and {len(ordered) - limit} more")
        return "\n".join(lines)


def compare(old: Router, new: Router, questions: Iterable[LabelledQuestion]) -> RegressionReport:
    items = list(questions)
    old_figures = evaluate(items, old.route)
    new_figures = evaluate(items, new.route)
    changes = []
    for before, after in zip(old_figures.outcomes, new_figures.outcomes, strict=True):
        old_label, new_label = route_label(before.decision), route_label(after.decision)
        if old_label != new_label:
            changes.append(
                RouteChange(
                    before.question.text,
                    before.question.expect,
                    old_label,
                    new_label,
                    before.correct,
                    after.correct,
                )
            )
    return RegressionReport(old_figures, new_figures, changes)


@dataclass(frozen=True)
class TableChanges:
    departments_added: tuple[str, ...] = ()
    departments_removed: tuple[str, ...] = ()
    departments_edited: tuple[str, ...] = ()
    rules_added: tuple[str, ...] = ()
    rules_removed: tuple[str, ...] = ()
    rules_edited: tuple[str, ...] = ()
    thresholds_changed: bool = False
    escalation_changed: bool = False

    @property
    def empty(self) -> bool:
        return not any(
            (
                self.departments_added,
                self.departments_removed,
                self.departments_edited,
                self.rules_added,
                self.rules_removed,
                self.rules_edited,
                self.thresholds_changed,
                self.escalation_changed,
            )
        )

    def describe(self) -> str:
        parts = []
        for label, ids in (
            ("departments added", self.departments_added),
            ("departments removed", self.departments_removed),
            ("departments edited", self.departments_edited),
            ("rules added", self.rules_added),
            ("rules removed", self.rules_removed),
            ("rules edited", self.rules_edited),
        ):
            if ids:
                parts.append(f"{label}: {', '.join(ids)}")
        if self.thresholds_changed:
            parts.append("thresholds changed")
        if self.escalation_changed:
            parts.append("escalation changed")
        return "; ".join(parts) or "no change in the table (knowledge base only)"

    def as_dict(self) -> dict[str, object]:
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in self.__dict__.items()
        }


def table_changes(old: RoutingTable, new: RoutingTable) -> TableChanges:
    def diff(before: dict[str, object], after: dict[str, object]) -> tuple[tuple[str, ...], ...]:
        added = tuple(sorted(set(after) - set(before)))
        removed = tuple(sorted(set(before) - set(after)))
        edited = tuple(sorted(k for k in set(before) & set(after) if before[k] != after[k]))
        return added, removed, edited

    departments = diff({d.id: d for d in old.departments}, {d.id: d for d in new.departments})
    rules = diff({r.id: r for r in old.rules}, {r.id: r for r in new.rules})
    return TableChanges(
        departments_added=departments[0],
        departments_removed=departments[1],
        departments_edited=departments[2],
        rules_added=rules[0],
        rules_removed=rules[1],
        rules_edited=rules[2],
        thresholds_changed=old.thresholds != new.thresholds,
        escalation_changed=old.escalation != new.escalation,
    )


_MASKS = [
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "[e-post]"),
    (re.compile(r"https?://\S+"), "[länk]"),
    (re.compile(r"\b\d{6,8}[-+ ]?\d{4}\b"), "[nummer]"),  # personnummer, organisationsnummer
    (re.compile(r"\bF-\d{4}-\d+\b", re.IGNORECASE), "[ärende]"),
    (re.compile(r"(?:\+46\s?|\b0)\d[\d\s-]{5,}\d"), "[telefon]"),
    (re.compile(r"\b\d{4,}\b"), "[nummer]"),
]


def anonymise(text: str) -> str:
    """Mask e-mail addresses, links, phone, personal and case numbers in a question.

    Names cannot be found reliably in free text; the coordinator who adds a question is asked
    to add only questions without names.
    """
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return " ".join(text.split())


def _short(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
