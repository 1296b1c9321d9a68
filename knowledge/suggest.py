"""Learning from traffic: questions the router did not place, grouped, become rule proposals.

The input is what happened to real questions — the department a coordinator finally handed a
case to, or the one a member chose in a clarification. Similar questions are grouped (rapidfuzz);
each group proposes, for the rule of that department it resembles most, the words the group
shares that the rule lacks (keywords) and its questions (examples, anonymised). Every proposal
is measured: how its own questions route before and after, and what it does to the question set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from knowledge.evaluation import LabelledQuestion
from knowledge.regression import RegressionReport, anonymise, compare
from knowledge.router import Router, RouterOptions
from knowledge.rules import RoutingTable, Rule
from knowledge.text import STOPWORDS, Language, detect_language, stems, words

_SIMILAR = 55.0  # token_set_ratio at which two questions belong to one group
_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class TrafficQuestion:
    """A real question and the department it turned out to belong to."""

    text: str
    department: str


@dataclass
class Proposal:
    rule_id: str
    department: str
    questions: list[str]
    keywords: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    # The language the questions are written in: where the keywords and examples would go.
    language: Language = "sv"
    placed_before: int = 0
    placed_after: int = 0

    def describe(self) -> str:
        lines = [
            f"Rule {self.rule_id} ({self.department}) — {len(self.questions)} question(s) like "
            f"'{_short(anonymise(self.questions[0]))}'",
        ]
        if self.keywords:
            lines.append(f"  add keywords ({self.language}): [{', '.join(self.keywords)}]")
        if self.examples:
            lines.append(f"  add examples ({self.language}):")
            lines.extend(f"    - {example}" for example in self.examples)
        total = len(self.questions)
        lines.append(
            f"  these questions answered with {self.department}: "
            f"{self.placed_before}/{total} → {self.placed_after}/{total}"
        )
        return "\n".join(lines)


@dataclass
class Suggestions:
    proposals: list[Proposal]
    effect: RegressionReport | None

    def describe(self) -> str:
        if not self.proposals:
            return "No suggestions: every question in the traffic log was placed."
        parts = [proposal.describe() for proposal in self.proposals]
        if self.effect is not None:
            parts.append("Effect of all proposals on the question set:\n" + self.effect.summary())
        return "\n\n".join(parts)


def group(questions: Iterable[TrafficQuestion]) -> list[list[TrafficQuestion]]:
    """Groups of similar questions with the same final department (single link, deterministic)."""
    groups: list[list[TrafficQuestion]] = []
    for question in sorted(questions, key=lambda q: (q.department, q.text)):
        content = _content(question.text)
        for existing in groups:
            if existing[0].department == question.department and any(
                fuzz.token_set_ratio(_content(member.text), content) >= _SIMILAR
                for member in existing
            ):
                existing.append(question)
                break
        else:
            groups.append([question])
    return groups


def _content(text: str) -> str:
    """The words that carry the subject: folded, without function words."""
    return " ".join(w for w in words(text) if w not in STOPWORDS and not w.isdigit())


def _nearest_rule(table: RoutingTable, department: str, texts: list[str]) -> Rule | None:
    rules = [rule for rule in table.rules if rule.department == department]
    if not rules:
        return None
    choices = {
        index: " ".join((*rule.examples.all(), *rule.keywords.all()))
        for index, rule in enumerate(rules)
    }
    best = process.extractOne(" ".join(texts), choices, scorer=fuzz.token_set_ratio)
    return rules[best[2]] if best else rules[0]


def _new_keywords(rule: Rule, texts: list[str], limit: int = 3) -> list[str]:
    known: set[str] = set()
    for phrase in (*rule.keywords.all(), *rule.examples.all()):
        for word in words(phrase):
            known |= stems(word)
    counts: Counter[str] = Counter()
    for text in texts:
        for word in set(words(text)):
            content = len(word) >= 4 and word not in STOPWORDS and not word.isdigit()
            if content and stems(word).isdisjoint(known):
                counts[word] += 1
    needed = max(2, (len(texts) + 1) // 2) if len(texts) > 1 else 1
    return [word for word, count in counts.most_common() if count >= needed][:limit]


def _with_proposals(table: RoutingTable, proposals: list[Proposal]) -> RoutingTable:
    by_rule: dict[str, list[Proposal]] = {}
    for proposal in proposals:
        by_rule.setdefault(proposal.rule_id, []).append(proposal)
    rules = []
    for rule in table.rules:
        extra = by_rule.get(rule.id, [])
        keywords, examples = rule.keywords, rule.examples
        for proposal in extra:
            keywords = keywords.adding(proposal.language, proposal.keywords)
            examples = examples.adding(proposal.language, proposal.examples)
        rules.append(rule.model_copy(update={"keywords": keywords, "examples": examples}))
    return table.model_copy(update={"rules": tuple(rules)})


def suggest(
    table: RoutingTable,
    router: Router,
    traffic: Iterable[TrafficQuestion],
    question_set: list[LabelledQuestion],
    options: RouterOptions | None = None,
) -> Suggestions:
    departments = {department.id for department in table.departments}
    relevant = [q for q in traffic if q.department in departments and q.text.strip()]
    proposals: list[Proposal] = []
    for members in group(relevant):
        department = members[0].department
        texts = [member.text for member in members]
        rule = _nearest_rule(table, department, texts)
        if rule is None:
            continue
        proposal = Proposal(
            rule_id=rule.id,
            department=department,
            questions=texts,
            keywords=_new_keywords(rule, texts),
            examples=[anonymise(text) for text in texts[:_MAX_EXAMPLES]],
            language=detect_language(" ".join(texts)) or "sv",
        )
        proposal.placed_before = sum(_answers(router, text, department) for text in texts)
        proposals.append(proposal)
    if not proposals:
        return Suggestions([], None)
    proposed = Router.build(_with_proposals(table, proposals), options)
    for proposal in proposals:
        proposal.placed_after = sum(
            _answers(proposed, text, proposal.department) for text in proposal.questions
        )
    effect = compare(router, proposed, question_set) if question_set else None
    return Suggestions(proposals, effect)


def _answers(router: Router, text: str, department: str) -> bool:
    decision = router.route(text)
    return decision.action == "answer" and decision.department == department


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
