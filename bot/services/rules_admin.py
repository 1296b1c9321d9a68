"""Changing the routing table while the bot serves: plan, check, go live, audit, roll back.

Nothing here swaps a table by itself: ``plan_reload`` builds and checks a candidate beside the
live one, and the caller makes it live (a reference swap, so questions in flight finish on the
table they started with) and records it with ``record_live``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, select

from bot.models import Case, ExampleQuestion, RulesVersion, utcnow
from knowledge.evaluation import LabelledQuestion, QuestionSetInvalid, load_questions
from knowledge.loading import Routing, load_routing
from knowledge.regression import (
    Bars,
    RegressionReport,
    TableChanges,
    anonymise,
    compare,
    table_changes,
)


class AdminRefused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def fingerprint(rules_path: Path, knowledge_path: Path) -> str:
    """A hash of the rules file and every article: what is on disk now."""
    digest = hashlib.sha256()
    for path in [rules_path, *sorted(knowledge_path.rglob("*.md"))]:
        digest.update(str(path.name).encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def regression_questions(*, session: Session, path: Path) -> list[LabelledQuestion]:
    """The project's question set: the file, plus questions coordinators confirmed."""
    questions: list[LabelledQuestion] = []
    if path.is_file():
        try:
            questions = load_questions(path)
        except QuestionSetInvalid:
            questions = []
    for number, example in enumerate(session.exec(select(ExampleQuestion)), start=1):
        questions.append(LabelledQuestion(example.text, (example.department,), -number))
    return questions


@dataclass
class ReloadPlan:
    candidate: Routing
    rules_text: str
    content_hash: str
    changes: TableChanges
    report: RegressionReport
    failures: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return bool(self.failures)

    def describe(self) -> str:
        lines = [f"Change: {self.changes.describe()}", self.report.summary()]
        if self.failures:
            lines.append("Held back: " + "; ".join(self.failures))
        return "\n".join(lines)

    def figures(self) -> dict[str, float]:
        return self.report.new.as_dict()


def plan_reload(
    *,
    session: Session,
    current: Routing,
    rules_path: Path,
    knowledge_path: Path,
    questions_path: Path,
    bars: Bars,
    cache_dir: Path | None = None,
) -> ReloadPlan:
    """Build the table on disk beside the live one and compare them; ``RulesInvalid`` if broken."""
    rules_text = rules_path.read_text(encoding="utf-8-sig") if rules_path.is_file() else ""
    candidate = load_routing(rules_path, knowledge_path, cache_dir=cache_dir)
    questions = regression_questions(session=session, path=questions_path)
    report = compare(current.router, candidate.router, questions)
    return ReloadPlan(
        candidate=candidate,
        rules_text=rules_text,
        content_hash=fingerprint(rules_path, knowledge_path),
        changes=table_changes(current.table, candidate.table),
        report=report,
        failures=report.failures(bars),
    )


def record_live(
    *,
    session: Session,
    content_hash: str,
    rules_text: str,
    source: str,
    by: int | None,
    summary: str,
    figures: dict[str, float],
) -> RulesVersion:
    version = RulesVersion(
        content_hash=content_hash,
        rules_text=rules_text,
        activated_at=utcnow(),
        activated_by=by,
        source=source,
        summary=summary,
        figures=json.dumps({k: round(v, 4) for k, v in figures.items()}),
    )
    session.add(version)
    session.commit()
    return version


def live_version(*, session: Session) -> RulesVersion | None:
    return session.exec(
        select(RulesVersion).order_by(
            col(RulesVersion.activated_at).desc(), col(RulesVersion.id).desc()
        )
    ).first()


def history(*, session: Session, limit: int = 20) -> list[RulesVersion]:
    return list(
        session.exec(
            select(RulesVersion)
            .order_by(col(RulesVersion.activated_at).desc(), col(RulesVersion.id).desc())
            .limit(limit)
        )
    )


def previous_version(*, session: Session) -> RulesVersion | None:
    """The table that was live just before the current one."""
    versions = history(session=session, limit=2)
    return versions[1] if len(versions) > 1 else None


def write_rules(path: Path, text: str) -> None:
    """Replace the rules file atomically (the watcher never reads half a file); the file it
    replaces is kept beside it as ``.bak``, so an edit not yet live is not lost."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        path.with_suffix(path.suffix + ".bak").write_bytes(path.read_bytes())
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".rules-", suffix=".yaml")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)


def add_example(*, session: Session, case_id: int, coordinator_id: int) -> ExampleQuestion:
    """A case's question, anonymised, joins the question set under its final department."""
    case = session.get(Case, case_id)
    if case is None:
        raise AdminRefused("unknown_case")
    # Only the department a coordinator handed the case to: the router's own guess would
    # teach the question set to agree with the router.
    department = case.handed_to
    if not department:
        raise AdminRefused("no_department")
    existing = session.exec(
        select(ExampleQuestion).where(ExampleQuestion.case_id == case_id)
    ).first()
    if existing is not None:
        raise AdminRefused("already_example")
    example = ExampleQuestion(
        text=anonymise(case.question)[:1000],
        department=department,
        case_id=case_id,
        added_by=coordinator_id,
    )
    session.add(example)
    session.commit()
    return example
