"""Scoring routing decisions against a question set, as `../shared/eval/README.md` defines it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.router import Decision

ESCALATE = "escalate"


@dataclass(frozen=True)
class LabelledQuestion:
    text: str
    expect: tuple[str, ...]
    line: int
    category: str | None = None


class QuestionSetInvalid(Exception):
    """A question file line that is not ``{"text": str, "expect": [str, ...]}``."""


def load_questions(path: Path) -> list[LabelledQuestion]:
    questions = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                item = json.loads(raw)
                text, expect = item["text"], item["expect"]
                if not isinstance(text, str) or not isinstance(expect, list) or not expect:
                    raise TypeError
            except (json.JSONDecodeError, KeyError, TypeError):
                raise QuestionSetInvalid(
                    f'{path}:{number}: expected {{"text": "...", "expect": ["department", ...]}}'
                ) from None
            category = item.get("category")
            questions.append(
                LabelledQuestion(
                    text,
                    tuple(str(e) for e in expect),
                    number,
                    category if isinstance(category, str) else None,
                )
            )
    return questions


@dataclass(frozen=True)
class Outcome:
    question: LabelledQuestion
    decision: Decision

    @property
    def correct(self) -> bool:
        if self.decision.action == "answer":
            return self.decision.department in self.question.expect
        if self.decision.action == "escalate":
            return ESCALATE in self.question.expect
        return False

    @property
    def helped(self) -> bool:
        if self.correct:
            return True
        if self.decision.action == "clarify":
            if ESCALATE in self.question.expect:
                return True
            return any(c.department in self.question.expect for c in self.decision.candidates)
        return False

    @property
    def wrong_answer(self) -> bool:
        return self.decision.action == "answer" and not self.correct

    @property
    def missed(self) -> bool:
        return self.decision.action == "escalate" and ESCALATE not in self.question.expect


@dataclass
class Figures:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    def _share(self, count: int, of: int) -> float:
        return count / of if of else 0.0

    @property
    def correct(self) -> float:
        return self._share(sum(o.correct for o in self.outcomes), self.total)

    @property
    def helped(self) -> float:
        return self._share(sum(o.helped for o in self.outcomes), self.total)

    @property
    def answer_precision(self) -> float:
        answers = [o for o in self.outcomes if o.decision.action == "answer"]
        return self._share(sum(o.correct for o in answers), len(answers)) if answers else 1.0

    @property
    def oos_recall(self) -> float:
        oos = [o for o in self.outcomes if o.question.expect == (ESCALATE,)]
        escalated = sum(o.decision.action == "escalate" for o in oos)
        return self._share(escalated, len(oos)) if oos else 1.0

    @property
    def wrong_answers(self) -> float:
        return self._share(sum(o.wrong_answer for o in self.outcomes), self.total)

    def as_dict(self) -> dict[str, float]:
        return {
            "correct": self.correct,
            "helped": self.helped,
            "answer_precision": self.answer_precision,
            "oos_recall": self.oos_recall,
            "wrong_answers": self.wrong_answers,
        }

    def action_counts(self) -> dict[str, int]:
        counts = {"answer": 0, "clarify": 0, "escalate": 0}
        for outcome in self.outcomes:
            counts[outcome.decision.action] += 1
        return counts


def evaluate(
    questions: Iterable[LabelledQuestion],
    route: Callable[..., Decision],
    *,
    use_category: bool = False,
) -> Figures:
    """Route every question (with its association category when ``use_category``) and score."""
    return Figures(
        [
            Outcome(q, route(q.text, q.category) if use_category and q.category else route(q.text))
            for q in questions
        ]
    )


def describe_miss(outcome: Outcome) -> str:
    decision = outcome.decision
    if decision.action == "answer":
        got = f"answer {decision.department}"
    elif decision.action == "clarify":
        got = "clarify " + "/".join(c.department for c in decision.candidates)
    else:
        got = "escalate"
    kind = (
        "WRONG"
        if outcome.wrong_answer
        else "missed"
        if outcome.missed
        else "helped"
        if outcome.helped
        else "not helped"
    )
    return (
        f"[{kind}] line {outcome.question.line}: {outcome.question.text!r} — expected "
        f"{'/'.join(outcome.question.expect)}, got {got} ({decision.score:.2f})"
    )
