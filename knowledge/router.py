"""The router: from a member's question to `answer`, `clarify` or `escalate`.

The index is built once per routing table (``Router.build``). Every rule's examples and keywords
become documents; each document is analysed (``knowledge.text``) into TF-IDF features. Two
signals score a department:

* a learned weighting: a multinomial logistic regression over the documents, trained at build time
  (deterministic: zero start, full batch, fixed steps), which learns which words matter for which
  department;
* the nearest document (cosine similarity), which says how close the question is to anything the
  table knows — the guard against confident answers to questions nobody wrote a rule for.

A department's score is the geometric mean of the two, plus a bonus when a rule's keyword is in the
question. Requests for a person and follow-ups on a case always escalate.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from array import array
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from rapidfuzz import fuzz, process

from knowledge.rules import Department, RoutingTable
from knowledge.text import (
    ARABIC_PROCLITICS,
    Analyzer,
    ContentWord,
    Language,
    Vocabulary,
    detect_language,
    fold,
    is_arabic,
    stems,
    words,
)

logger = logging.getLogger(__name__)

Action = Literal["answer", "clarify", "escalate"]
ESCALATE_CLASS = "escalate"
# Bumped whenever analysis or training changes, so cached weights of an older router are not used.
MODEL_VERSION = "4"

# A reference to a specific case: our own (F-2026-0042), or a number after a word naming a case.
# After "ansökan" only a number shaped like a reference counts: "ansökan 2026" is a year.
_CASE_REFERENCE = re.compile(
    r"\bf-\d{4}-\d{2,}\b"
    r"|\b(?:arende\w*|diarienummer|dnr|case|referens\w*|ref)\W{0,3}"
    r"(?:nr|nummer|number|no)?\W{0,3}(?:[a-z]{1,4}\W?)?\d[\d\-/]{2,}"
    r"|\bansokan\w*\W{0,3}(?:nr|nummer)?\W{0,3}(?:[a-z]{1,4}\W?)?(?:\d{2,4}[-/]\d+|\d{5,})"
    # Arabic (folded): ملف / قضية / معاملة ("file", "case") with a number, or طلب ("application")
    # with a reference-shaped one; a clitic (و ب ل ف ال) may stand before, an ending after.
    r"|(?:رقم\W{0,3})?\b[وبلف]?(?:ال)?(?:ملف|قضيه|معامله)\w{0,3}\W{0,3}(?:رقم)?\W{0,3}"
    r"(?:[a-z]{1,4}\W?)?\d[\d\-/]{2,}"
    r"|\b[وبلف]?(?:ال)?طلب\w{0,3}\W{0,3}(?:رقم)?\W{0,3}(?:[a-z]{1,4}\W?)?(?:\d{2,4}[-/]\d+|\d{5,})"
)


@dataclass(frozen=True)
class RouterOptions:
    """Switches for each analysis step, so that the benchmarks can measure what each one adds."""

    stemming: bool = True
    compounds: bool = True
    char_ngrams: bool = True
    repair: bool = True
    learned: bool = True
    keyword_bonus: float = 0.15
    coverage_power: float = 1.0
    train_steps: int = 60
    learning_rate: float = 0.2
    # The L2 penalty on the mean loss is ``l2_per_table / number of documents`` (scikit-learn's
    # 1/C): a table that grows, e.g. by examples in another language, is not regularised harder.
    l2_per_table: float = 0.02


@dataclass(frozen=True)
class Candidate:
    department: str
    score: float
    rule: str | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    department: str | None
    score: float
    candidates: tuple[Candidate, ...]
    rule: str | None
    article: str | None
    explanation: str
    reason: str
    # The language the question is written in: detected from its words, else the member's.
    language: Language | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "department": self.department,
            "score": round(self.score, 4),
            "candidates": [
                {"department": c.department, "score": round(c.score, 4)} for c in self.candidates
            ],
            "rule": self.rule,
            "article": self.article,
            "explanation": self.explanation,
        }


@dataclass(frozen=True)
class CandidateExplanation:
    """Why one department scored as it did, for `concierge rules explain`."""

    department: str
    score: float
    probability: float
    similarity: float
    coverage: float
    rule: str | None
    nearest_example: str | None
    keywords: tuple[str, ...]
    words: tuple[tuple[str, float], ...]


@dataclass
class _Query:
    """A question as feature columns and TF-IDF values (L2-normalised)."""

    columns: np.ndarray
    values: np.ndarray


@dataclass
class _Scores:
    departments: list[str]
    combined: np.ndarray
    probability: np.ndarray
    similarity: np.ndarray
    doc_similarity: np.ndarray
    class_bounds: list[tuple[int, int]]
    keyword_hits: dict[str, list[str]] = field(default_factory=dict)
    query: _Query | None = None
    content: list[ContentWord] = field(default_factory=list)
    coverage: float = 1.0

    def best_doc(self, class_index: int) -> int:
        """The document of class ``class_index`` nearest to the question."""
        start, end = self.class_bounds[class_index]
        if start >= end:
            return -1
        return start + int(np.argmax(self.doc_similarity[start:end]))


class Router:
    """A routing table compiled for fast, deterministic routing. Immutable once built."""

    def __init__(
        self,
        table: RoutingTable,
        options: RouterOptions,
        analyzer: Analyzer,
        feature_index: dict[str, int],
        idf: np.ndarray,
        documents: sp.csr_matrix,
        doc_texts: list[str],
        doc_rules: list[str | None],
        doc_class: np.ndarray,
        classes: list[str],
        weights: np.ndarray,
        bias: np.ndarray,
    ) -> None:
        self.table = table
        self.options = options
        self._analyzer = analyzer
        self._feature_index = feature_index
        self._feature_names = {index: name for name, index in feature_index.items()}
        self._idf = idf
        self._idf_values: list[float] = idf.tolist()  # per-feature lookups without numpy scalars
        self._max_idf = float(idf.max()) if len(idf) else 1.0
        documents_t = documents.T.tocsr()
        self._postings_start = documents_t.indptr[:-1]
        self._postings_end = documents_t.indptr[1:]
        self._postings_docs = documents_t.indices
        self._postings_values = documents_t.data
        self._n_docs = documents.shape[0]
        self._doc_texts = doc_texts
        self._doc_rules = doc_rules
        self._classes = classes
        self._weights = weights
        self._bias = bias
        self._rules = {rule.id: rule for rule in table.rules}
        # Documents are grouped by class so that "best document per class" is one reduceat.
        self._class_starts = np.searchsorted(doc_class, np.arange(len(classes)))
        ends = [*self._class_starts[1:].tolist(), len(doc_class)]
        self._class_bounds = list(zip(self._class_starts.tolist(), ends, strict=True))
        self._class_index = {name: index for index, name in enumerate(classes)}
        self._keywords = self._compile_keywords(table)
        # Keywords by each stem they contain, so that a question is checked only against the
        # keywords that share a word with it.
        self._keywords_by_stem: dict[str, list[int]] = {}
        for position, (_, _, _, parts) in enumerate(self._keywords):
            for stem in sorted(set().union(*parts)):
                self._keywords_by_stem.setdefault(stem, []).append(position)
        self._outside_places = {
            fold(place): place for place in table.escalation.outside_places.all()
        }
        # Longer person phrases by script, for the fuzzy match of a request typed with typos.
        self._long_person_phrases: dict[bool, list[str]] = {False: [], True: []}
        for phrase in table.escalation.person_phrases.all():
            if len(fold(phrase)) >= 10:
                self._long_person_phrases[_mostly_arabic(phrase)].append(fold(phrase))
        # Each person phrase as the stems of its words, found through the stems of its first.
        self._person_phrases = [
            [stems(word) for word in words(phrase)]
            for phrase in table.escalation.person_phrases.all()
        ]
        self._person_phrases_by_stem: dict[str, list[int]] = {}
        for position, phrase_stems in enumerate(self._person_phrases):
            for stem in sorted(phrase_stems[0] if phrase_stems else ()):
                self._person_phrases_by_stem.setdefault(stem, []).append(position)

    # -- building --------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        table: RoutingTable,
        options: RouterOptions | None = None,
        cache_dir: Path | None = None,
    ) -> Router:
        """Compile ``table``; trained weights are cached in ``cache_dir`` by content hash."""
        options = options or RouterOptions()
        departments = [department.id for department in table.departments]
        classes = list(departments)
        docs: list[tuple[str, str | None, str]] = []  # (class, rule id, text)
        for rule in table.rules:
            docs.extend((rule.department, rule.id, text) for text in rule.examples.all())
            docs.extend((rule.department, rule.id, text) for text in rule.keywords.all())
        for department in table.departments:
            docs.extend((department.id, None, name) for name in _department_names(department))
        escalation = table.escalation
        escalation_texts = [
            *escalation.examples.all(),
            *escalation.person_phrases.all(),
            *escalation.out_of_scope.all(),
        ]
        if escalation_texts:
            classes.append(ESCALATE_CLASS)
            docs.extend((ESCALATE_CLASS, None, text) for text in escalation_texts)
        class_index = {name: index for index, name in enumerate(classes)}
        docs.sort(key=lambda doc: class_index[doc[0]])

        vocabulary = Vocabulary()
        for _, _, text in docs:
            for word in words(text):
                vocabulary.add(word)
        vocabulary.freeze()
        analyzer = Analyzer(
            vocabulary,
            char_ngrams=options.char_ngrams,
            stemming=options.stemming,
            compounds=options.compounds,
        )

        feature_index: dict[str, int] = {}
        # CSR built directly in typed arrays: Python lists of millions of numbers cost ~10x.
        indptr = array("q", [0])
        cols = array("i")
        values = array("f")
        for _, _, text in docs:
            for feature, weight in sorted(analyzer.features(text, repair=False).items()):
                cols.append(feature_index.setdefault(feature, len(feature_index)))
                values.append(weight)
            indptr.append(len(cols))
        counts = sp.csr_matrix(
            (
                np.frombuffer(values, dtype=np.float32),
                np.frombuffer(cols, dtype=np.int32),
                np.frombuffer(indptr, dtype=np.int64),
            ),
            shape=(len(docs), len(feature_index)),
        )
        document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = (np.log((1 + counts.shape[0]) / (1 + document_frequency)) + 1).astype(np.float32)
        matrix = _normalise(counts.multiply(idf).tocsr())
        doc_class = np.array([class_index[doc[0]] for doc in docs], dtype=np.int64)

        features_digest = hashlib.sha256("\n".join(feature_index).encode()).hexdigest()
        weights, bias = _train(
            matrix, doc_class, len(classes), options, table, cache_dir, features_digest
        )
        return cls(
            table=table,
            options=options,
            analyzer=analyzer,
            feature_index=feature_index,
            idf=idf,
            documents=matrix,
            doc_texts=[doc[2] for doc in docs],
            doc_rules=[doc[1] for doc in docs],
            doc_class=doc_class,
            classes=classes,
            weights=weights,
            bias=bias,
        )

    def _compile_keywords(
        self, table: RoutingTable
    ) -> list[tuple[str, str | None, str, list[frozenset[str]]]]:
        """(department, rule or None, keyword, stems per word); department names count too."""
        compiled: list[tuple[str, str | None, str, list[frozenset[str]]]] = []
        for rule in table.rules:
            for keyword in rule.keywords.all():
                parts = self._analyzer.phrase_stems(keyword)
                if parts:
                    compiled.append((rule.department, rule.id, keyword, parts))
        for department in table.departments:
            for name in _department_names(department):
                parts = self._analyzer.phrase_stems(name)
                if parts:
                    compiled.append((department.id, None, name, parts))
        return compiled

    # -- routing ---------------------------------------------------------------------------

    def route(
        self, question: str, category: str | None = None, language: Language | None = None
    ) -> Decision:
        """Decide where ``question`` goes; ``category`` is the asker's kind of association.

        Never raises on any text. With a category, a question whose best rule depends on the
        kind of association (``by_category``) is answered for that category. ``language`` is
        the member's language: the decision's ``language`` is the one the question is written
        in, and the member's when the words do not tell (a bare "LOK?"). The table holds every
        language's phrases side by side, so the route itself does not depend on it.
        """
        decision = self._route(question)
        if category is not None and decision.action != "escalate":
            decision = self._for_category(decision, category)
        written_in = detect_language(question) if isinstance(question, str) else None
        return replace(decision, language=written_in or language)

    def _for_category(self, decision: Decision, category: str) -> Decision:
        target = self.table.categories.get(category)
        if target is None:
            return decision
        rule_id = (
            decision.rule
            if decision.action == "answer"
            else (decision.candidates[0].rule if decision.candidates else None)
        )
        rule = self._rules.get(rule_id or "")
        if rule is None or not rule.by_category:
            return decision
        return Decision(
            action="answer",
            department=target.department,
            score=decision.score,
            candidates=decision.candidates,
            rule=rule.id,
            article=target.article,
            explanation=f"rule '{rule.id}' depends on the kind of association: {category} → "
            f"{target.department}; " + decision.explanation,
            reason="by_category",
        )

    def _route(self, question: str) -> Decision:
        text = question if isinstance(question, str) else ""
        folded = fold(text[:2000])
        if self._asks_for_person(text, folded):
            return self._escalate(
                0.0, (), "person_request", "asks for a person: handed to the coordinator"
            )
        if _CASE_REFERENCE.search(folded):
            return self._escalate(
                0.0, (), "case_followup", "mentions a specific case: handed to the coordinator"
            )
        mentioned = [
            self._outside_places[form]
            for word in words(text)
            for form in _place_forms(word)
            if form in self._outside_places
        ]
        if mentioned:
            return self._escalate(
                0.0,
                (),
                "outside_place",
                f"names {mentioned[0]}, outside Helsingborg: handed to the coordinator",
            )
        scores = self._score(text)
        if scores is None:
            return self._escalate(
                0.0,
                (),
                "unreadable",
                "no words the routing table knows: handed to the coordinator",
            )
        thresholds = self.table.thresholds
        order = np.argsort(-scores.combined, kind="stable")
        ranked = [(scores.departments[i], float(scores.combined[i]), int(i)) for i in order]
        department_ranked = [item for item in ranked if item[0] != ESCALATE_CLASS]
        top_name, top_score, top_index = ranked[0]
        if top_name == ESCALATE_CLASS and top_score >= thresholds.clarify:
            return self._escalate(
                top_score,
                self._candidates(department_ranked, scores, 3),
                "escalation_example",
                "reads like a follow-up, a complaint or something outside "
                f"the city's business ({top_score:.2f}): handed to the "
                "coordinator",
            )
        best_name, best_score, best_index = department_ranked[0]
        runner_up = department_ranked[1][1] if len(department_ranked) > 1 else 0.0
        if best_score >= thresholds.answer and best_score - runner_up >= thresholds.answer_margin:
            rule_id = self._best_rule(scores, best_index)
            rule = self._rules.get(rule_id) if rule_id else None
            return Decision(
                action="answer",
                department=best_name,
                score=best_score,
                candidates=self._candidates(department_ranked, scores, thresholds.max_candidates),
                rule=rule_id,
                article=rule.article if rule else None,
                explanation=self._because(best_name, best_index, scores),
                reason="confident",
            )
        if best_score >= thresholds.clarify:
            candidates = self._candidates(
                [item for item in department_ranked if item[1] >= thresholds.clarify / 2],
                scores,
                thresholds.max_candidates,
            )
            if len(candidates) < 2 and len(department_ranked) > 1:
                candidates = self._candidates(department_ranked, scores, 2)
            if len(candidates) >= 2:
                names = ", ".join(f"{c.department} {c.score:.2f}" for c in candidates)
                return Decision(
                    action="clarify",
                    department=None,
                    score=best_score,
                    candidates=candidates,
                    rule=None,
                    article=None,
                    explanation=f"not sure between {names}; "
                    + self._because(best_name, best_index, scores),
                    reason="close_call" if best_score >= thresholds.answer else "uncertain",
                )
        return self._escalate(
            best_score,
            self._candidates(department_ranked, scores, thresholds.max_candidates),
            "low_score",
            f"best match {best_name} scored {best_score:.2f}, below the clarify threshold "
            f"{thresholds.clarify:.2f}: handed to the coordinator",
        )

    def rank(self, question: str) -> list[Candidate]:
        """Every department (and the escalation class) with its score, best first."""
        scores = self._score(question)
        if scores is None:
            return []
        order = np.argsort(-scores.combined, kind="stable")
        return [Candidate(scores.departments[i], float(scores.combined[i])) for i in order]

    def explain(
        self, question: str, limit: int = 5
    ) -> tuple[Decision, list[CandidateExplanation]]:
        """The decision and, per leading candidate, the numbers and words behind its score."""
        decision = self.route(question)
        scores = self._score(question)
        if scores is None:
            return decision, []
        explanations = []
        for index in np.argsort(-scores.combined, kind="stable")[:limit]:
            name = scores.departments[index]
            doc = scores.best_doc(int(index))
            explanations.append(
                CandidateExplanation(
                    department=name,
                    score=float(scores.combined[index]),
                    probability=float(scores.probability[index]),
                    similarity=float(scores.similarity[index]),
                    coverage=scores.coverage,
                    rule=self._best_rule(scores, int(index)),
                    nearest_example=self._doc_texts[doc] if doc >= 0 else None,
                    keywords=tuple(scores.keyword_hits.get(name, ())),
                    words=tuple(self._deciding_words(scores, int(index))),
                )
            )
        return decision, explanations

    # -- internals -------------------------------------------------------------------------

    def _asks_for_person(self, text: str, folded: str) -> bool:
        if not self._person_phrases:
            return False
        query_stems: set[str] = set()
        for word in words(text):
            query_stems |= stems(word)
        candidates: set[int] = set()
        for stem in query_stems:
            candidates.update(self._person_phrases_by_stem.get(stem, ()))
        for position in candidates:
            if all(not s.isdisjoint(query_stems) for s in self._person_phrases[position]):
                return True
        # Typed with typos ("prata med en manniska"): a close match of a longer phrase.
        long_phrases = self._long_person_phrases[_mostly_arabic(folded)]
        return bool(
            long_phrases
            and process.extractOne(
                folded, long_phrases, scorer=fuzz.partial_ratio, score_cutoff=92
            )
        )

    def _coverage(self, content: list[ContentWord]) -> float:
        """IDF-weighted share of the question's content words that the table knows.

        A question about something no rule mentions ("skriv en dikt om hösten") shares only
        common words with the table; its unknown words are rare and so weigh the most.
        """
        if not content:
            return 1.0
        total = known = 0.0
        for word in content:
            column = self._feature_index.get(word.main_feature)
            weight = float(self._idf[column]) if column is not None else self._max_idf
            total += weight
            known += weight * word.known
        return known / total if total else 1.0

    def _vector(self, text: str) -> tuple[_Query | None, list[ContentWord]]:
        feats, content = self._analyzer.analyse(text, repair=self.options.repair)
        columns, values = [], []
        index, idf = self._feature_index, self._idf_values
        for feature, weight in feats.items():
            column = index.get(feature)
            if column is not None:
                columns.append(column)
                values.append(weight * idf[column])
        if not columns:
            return None, content
        vector = np.asarray(values, dtype=np.float32)
        vector /= np.linalg.norm(vector)
        return _Query(np.asarray(columns, dtype=np.int64), vector), content

    def _similarities(self, query: _Query) -> np.ndarray:
        """Cosine similarity of the question to every document (sparse dot products)."""
        starts = self._postings_start[query.columns]
        lengths = self._postings_end[query.columns] - starts
        total = int(lengths.sum())
        if total == 0:
            return np.zeros(self._n_docs)
        # Positions of every posting of every query feature, without a Python loop.
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        positions = offsets + np.arange(total)
        weights = self._postings_values[positions] * np.repeat(query.values, lengths)
        return np.bincount(self._postings_docs[positions], weights=weights, minlength=self._n_docs)

    def _score(self, text: str) -> _Scores | None:
        query, content = self._vector(text)
        if query is None:
            return None
        similarity_per_doc = self._similarities(query)
        best_similarity = np.maximum.reduceat(similarity_per_doc, self._class_starts)
        if self.options.learned:
            logits = query.values @ self._weights[query.columns] + self._bias
            logits -= logits.max()
            probability = np.exp(logits)
            probability /= probability.sum()
            combined = np.sqrt(np.clip(probability, 0, 1) * np.clip(best_similarity, 0, 1))
        else:
            probability = np.zeros(len(self._classes), dtype=np.float32)
            combined = np.clip(best_similarity, 0, 1).astype(np.float64)
        coverage = self._coverage(content) ** self.options.coverage_power
        combined = combined * coverage
        keyword_hits = self._keyword_hits(content)
        if keyword_hits and self.options.keyword_bonus:
            for department in keyword_hits:
                index = self._class_index[department]
                combined[index] = min(1.0, combined[index] + self.options.keyword_bonus)
        return _Scores(
            departments=self._classes,
            combined=np.asarray(combined, dtype=np.float64),
            probability=probability,
            similarity=best_similarity,
            doc_similarity=similarity_per_doc,
            class_bounds=self._class_bounds,
            keyword_hits=keyword_hits,
            query=query,
            content=content,
            coverage=coverage,
        )

    def _keyword_hits(self, content: list[ContentWord]) -> dict[str, list[str]]:
        query_stems: set[str] = set()
        for word in content:
            query_stems |= word.stems
        hits: dict[str, list[str]] = {}
        candidates: set[int] = set()
        for stem in query_stems:
            candidates.update(self._keywords_by_stem.get(stem, ()))
        for position in sorted(candidates):
            department, _, keyword, parts = self._keywords[position]
            if all(not part.isdisjoint(query_stems) for part in parts):
                hits.setdefault(department, []).append(keyword)
        return hits

    def _best_rule(self, scores: _Scores, class_index: int) -> str | None:
        department = scores.departments[class_index]
        nearest_rule = self._doc_rules[scores.best_doc(class_index)]
        if nearest_rule is not None:
            return nearest_rule
        hits = scores.keyword_hits.get(department, ())
        for keyword_department, keyword_rule, keyword, _ in self._keywords:
            if keyword_rule and keyword_department == department and keyword in hits:
                return keyword_rule
        return None

    def _deciding_words(self, scores: _Scores, class_index: int) -> list[tuple[str, float]]:
        """The member's own words that pulled most toward the class, with their pull."""
        if scores.query is None:
            return []
        query = scores.query
        value_of = dict(zip(query.columns.tolist(), query.values.tolist(), strict=True))
        pulls: dict[str, float] = {}
        for word in scores.content:
            pull = 0.0
            for feature in word.features:
                column = self._feature_index.get(feature)
                if column is None or column not in value_of:
                    continue
                weight = float(self._weights[column, class_index]) if self.options.learned else 1.0
                pull += value_of[column] * weight
            pulls[word.original] = max(pulls.get(word.original, 0.0), pull)
        ranked = sorted(pulls.items(), key=lambda item: -item[1])
        return [(word, round(value, 3)) for word, value in ranked[:4] if value > 0]

    def _because(self, department: str, class_index: int, scores: _Scores) -> str:
        parts = [f"{department} {float(scores.combined[class_index]):.2f}"]
        rule = self._best_rule(scores, class_index)
        if rule:
            parts.append(f"rule '{rule}'")
        deciding = self._deciding_words(scores, class_index)
        if deciding:
            parts.append("words " + ", ".join(f"'{word}'" for word, _ in deciding))
        hits = scores.keyword_hits.get(department)
        if hits:
            parts.append("keywords " + ", ".join(f"'{k}'" for k in hits[:3]))
        doc = scores.best_doc(class_index)
        parts.append(
            f"nearest example '{_shorten(self._doc_texts[doc])}' "
            f"({float(scores.similarity[class_index]):.2f})"
        )
        return "; ".join(parts)

    def _candidates(
        self, ranked: list[tuple[str, float, int]], scores: _Scores, limit: int
    ) -> tuple[Candidate, ...]:
        return tuple(
            Candidate(department=name, score=score, rule=self._best_rule(scores, index))
            for name, score, index in ranked[:limit]
        )

    def _escalate(
        self, score: float, candidates: tuple[Candidate, ...], reason: str, explanation: str
    ) -> Decision:
        return Decision(
            action="escalate",
            department=None,
            score=score,
            candidates=candidates,
            rule=None,
            article=None,
            explanation=explanation,
            reason=reason,
        )


def _department_names(department: Department) -> list[str]:
    """A department's names as a member may write them, without the parenthesised part."""
    names = [department.name, department.name_en or ""]
    return [re.sub(r"\(.*?\)", "", name).strip() for name in names if name.strip()]


def _mostly_arabic(text: str) -> bool:
    found = words(text)
    return sum(1 for word in found if is_arabic(word)) * 2 > len(found)


def _place_forms(word: str) -> tuple[str, ...]:
    """``word`` and, for an Arabic word, without one or two particles written onto it.

    "بمالمو" is "in Malmö", "ولوند" "and Lund".
    """
    if not is_arabic(word):
        return (word,)
    forms = [word]
    for cut in (1, 2):
        if len(word) - cut >= 3 and set(word[:cut]) <= ARABIC_PROCLITICS:
            forms.append(word[cut:])
    return tuple(forms)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags((1.0 / norms).astype(np.float32)) @ matrix)


def _train(
    matrix: sp.csr_matrix,
    labels: np.ndarray,
    n_classes: int,
    options: RouterOptions,
    table: RoutingTable,
    cache_dir: Path | None,
    features_digest: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch Adam; deterministic for a given table."""
    n_features = matrix.shape[1]
    if not options.learned:
        return np.zeros((n_features, n_classes), np.float32), np.zeros(n_classes, np.float32)
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256(
            f"{MODEL_VERSION}|{table.content_hash()}|{options}|{features_digest}".encode()
        ).hexdigest()[:32]
        cache_file = cache_dir / f"router-{key}.npz"
        try:
            with np.load(cache_file) as cached:
                weights, bias = cached["weights"], cached["bias"]
            if weights.shape == (n_features, n_classes):
                return weights, bias
        except (OSError, ValueError, KeyError):
            pass
    targets = np.zeros((matrix.shape[0], n_classes), np.float32)
    targets[np.arange(matrix.shape[0]), labels] = 1.0
    weights = np.zeros((n_features, n_classes), np.float32)
    bias = np.zeros(n_classes, np.float32)
    first = np.zeros_like(weights)
    second = np.zeros_like(weights)
    scratch = np.empty_like(weights)  # one buffer for every temporary of the update
    transposed = matrix.T.tocsr()
    count = matrix.shape[0]
    for step in range(1, options.train_steps + 1):
        logits = matrix @ weights
        logits += bias
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        logits -= targets
        logits /= count
        error = logits
        gradient = transposed @ error
        gradient += options.l2_per_table / count * weights
        first *= 0.9
        first += np.multiply(gradient, 0.1, out=scratch)
        second *= 0.999
        np.multiply(gradient, gradient, out=scratch)
        scratch *= 0.001
        second += scratch
        correction = math.sqrt(1 - 0.999**step) / (1 - 0.9**step)
        np.sqrt(second, out=scratch)
        scratch += 1e-8
        np.divide(first, scratch, out=scratch)
        scratch *= options.learning_rate * correction
        weights -= scratch
        bias -= options.learning_rate * error.sum(axis=0)
        del gradient
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache_file.with_suffix(".tmp.npz")
            np.savez(temporary, weights=weights, bias=bias)
            temporary.replace(cache_file)
        except OSError as exc:  # a read-only cache only costs build time
            logger.warning("could not write router cache %s: %s", cache_file, exc)
    return weights, bias
