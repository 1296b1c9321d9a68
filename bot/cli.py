"""The `concierge` command line: thin over the same services the bot uses."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError

from knowledge.evaluation import QuestionSetInvalid, describe_miss, evaluate, load_questions
from knowledge.loading import (
    Routing,
    default_cache_dir,
    default_knowledge_path,
    default_questions_path,
    default_rules_path,
    load_routing,
    load_table,
)
from knowledge.rules import RulesInvalid

_RULES_OPTION = click.option(
    "--rules",
    "rules_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Routing table (default: $RULES_PATH, else ./routing_rules.yaml).",
)
_KNOWLEDGE_OPTION = click.option(
    "--knowledge",
    "knowledge_path",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Knowledge base folder (default: $KNOWLEDGE_PATH, else the shipped articles).",
)


def _load(rules_path: Path | None, knowledge_path: Path | None) -> Routing:
    try:
        return load_routing(rules_path, knowledge_path, cache_dir=default_cache_dir())
    except RulesInvalid as exc:
        _fail_invalid(exc)


def _fail_invalid(exc: RulesInvalid) -> NoReturn:
    click.echo(f"The routing table cannot be used ({len(exc.errors)} problem(s)):", err=True)
    for error in exc.errors:
        click.echo(f"  {error}", err=True)
    sys.exit(1)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
def main(verbose: bool) -> None:
    """Föreningslotsen: routes association questions to the right place in the city."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Bot API URLs contain the token; httpx logs them at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@main.command("run")
def run_bot() -> None:
    """Start the Telegram bot: long polling, or webhooks when WEBHOOK_URL is set."""
    from bot.app import build_services, run
    from bot.config import SettingsInvalid, load_settings

    # The event loop and the database threads take turns at 1 ms instead of Python's 5:
    # under load an update waits less for a thread busy routing another (bench/load.py: p99
    # at 200 members about 100 → 85 ms, throughput unchanged; 0.5 ms cost throughput).
    sys.setswitchinterval(0.001)
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its URLs contain the token
    try:
        settings = load_settings()
    except SettingsInvalid as exc:
        click.echo("Cannot start: the configuration is not valid.", err=True)
        for line in str(exc).splitlines():
            click.echo(f"  {line}", err=True)
        sys.exit(2)
    try:
        services = build_services(settings)
    except RulesInvalid as exc:
        _fail_invalid(exc)
    except SQLAlchemyError as exc:
        click.echo(
            f"Cannot start: DATABASE_URL cannot be used ({type(exc).__name__}); check "
            "the address, that the server runs and that the user may connect.",
            err=True,
        )
        sys.exit(2)
    run(settings, services)


@main.command("sandbox")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="Port of the page on 127.0.0.1 (the next free one if it is taken; 0: any).",
)
@click.option(
    "--database",
    default=None,
    help="SQLite file (or database URL) to keep between runs; default: a fresh one each time.",
)
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for the copy of the routing table (kept); default: a temporary folder.",
)
@click.option(
    "--open/--no-open",
    "open_browser",
    default=None,
    help="Open the page in a browser (default: when there is a display).",
)
def sandbox(
    port: int, database: str | None, workdir: Path | None, open_browser: bool | None
) -> None:
    """Try the bot in a browser, without Telegram: made-up members and coordinators."""
    import asyncio

    from bot.config import SettingsInvalid
    from bot.sandbox import serve

    logging.getLogger("httpx").setLevel(logging.WARNING)  # its URLs contain the token
    try:
        asyncio.run(
            serve(
                echo=click.echo,
                port=port,
                database=database,
                workdir=workdir,
                open_browser=open_browser,
            )
        )
    except (KeyboardInterrupt, asyncio.CancelledError):
        click.echo("Stopped.")
    except RulesInvalid as exc:
        _fail_invalid(exc)
    except SettingsInvalid as exc:
        click.echo(f"Cannot start the sandbox: {exc}", err=True)
        sys.exit(2)
    except (SQLAlchemyError, OSError) as exc:
        click.echo(f"Cannot start the sandbox: {exc}", err=True)
        sys.exit(2)


@main.command()
@_RULES_OPTION
@_KNOWLEDGE_OPTION
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.argument("questions", nargs=-1)
def route(
    rules_path: Path | None, knowledge_path: Path | None, as_json: bool, questions: tuple[str, ...]
) -> None:
    """Route the QUESTIONS given, or one question a line from stdin."""
    routing = _load(rules_path, knowledge_path)
    source = questions or (line.rstrip("\n") for line in sys.stdin)
    for question in source:
        decision = routing.router.route(question)
        if as_json:
            click.echo(json.dumps(decision.to_json(), ensure_ascii=False))
            continue
        if decision.action == "answer":
            head = f"answer → {decision.department} ({decision.score:.2f})"
            if decision.article:
                head += f" · article {decision.article}"
        elif decision.action == "clarify":
            head = "clarify → " + ", ".join(
                f"{c.department} ({c.score:.2f})" for c in decision.candidates
            )
        else:
            head = "escalate → coordinator"
        click.echo(f"{question}\n  {head}\n  why: {decision.explanation}")


@main.group()
def rules() -> None:
    """Check and explain the routing table."""


@rules.command("check")
@click.argument(
    "path", required=False, type=click.Path(path_type=Path, dir_okay=False), default=None
)
@_KNOWLEDGE_OPTION
def rules_check(path: Path | None, knowledge_path: Path | None) -> None:
    """Validate the routing table and the knowledge base; exit 1 with every error."""
    path = path or default_rules_path()
    try:
        table, knowledge = load_table(path, knowledge_path or default_knowledge_path())
    except RulesInvalid as exc:
        _fail_invalid(exc)
    examples = sum(len(rule.examples) for rule in table.rules)
    to_verify = [d.id for d in table.departments if d.contact.example]
    click.echo(
        f"{path}: OK — {len(table.departments)} departments, {len(table.rules)} rules, "
        f"{examples} examples, {len(knowledge.articles)} articles"
    )
    if to_verify:
        click.echo(
            f"  contact details marked as examples (verify before launch): {', '.join(to_verify)}"
        )
    facts = sum(len(a.meta.verify) for a in knowledge.articles.values())
    if facts:
        click.echo(f"  facts in articles marked for the city to verify: {facts}")


@rules.command("explain")
@_RULES_OPTION
@_KNOWLEDGE_OPTION
@click.argument("question")
def rules_explain(rules_path: Path | None, knowledge_path: Path | None, question: str) -> None:
    """Show, per candidate department, why QUESTION scored as it did."""
    routing = _load(rules_path, knowledge_path)
    decision, candidates = routing.router.explain(question)
    click.echo(
        f"Decision: {decision.action}"
        + (f" → {decision.department}" if decision.department else "")
        + f" ({decision.score:.2f}); {decision.explanation}"
    )
    thresholds = routing.table.thresholds
    click.echo(
        f"Thresholds: answer ≥ {thresholds.answer} (lead ≥ {thresholds.answer_margin}), "
        f"clarify ≥ {thresholds.clarify}"
    )
    for candidate in candidates:
        click.echo(
            f"\n{candidate.department}: score {candidate.score:.3f} = √(learned "
            f"{candidate.probability:.3f} × nearest {candidate.similarity:.3f}) × known words "
            f"{candidate.coverage:.2f}" + (" + keyword bonus" if candidate.keywords else "")
        )
        if candidate.rule:
            click.echo(f"  rule: {candidate.rule}")
        if candidate.nearest_example:
            click.echo(f"  nearest example: {candidate.nearest_example}")
        if candidate.keywords:
            click.echo(f"  keywords found: {', '.join(candidate.keywords)}")
        if candidate.words:
            click.echo(
                "  words that pulled toward it: "
                + ", ".join(f"{word} ({weight:+.2f})" for word, weight in candidate.words)
            )


_QUESTIONS_OPTION = click.option(
    "--questions",
    "questions_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Question set (default: $QUESTIONS_PATH, else knowledge/questions.jsonl).",
)
_DATABASE_OPTION = click.option(
    "--database",
    "database_url",
    default=None,
    help="Database (default: $DATABASE_URL, else sqlite:///foreningslotsen.sqlite3).",
)


def _database(url: str | None) -> Any:
    from bot.db import create_schema, make_engine

    engine = make_engine(
        url or os.environ.get("DATABASE_URL") or "sqlite:///foreningslotsen.sqlite3"
    )
    create_schema(engine)
    return engine


@rules.command("diff")
@click.argument("old", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("new", type=click.Path(path_type=Path, dir_okay=False))
@_KNOWLEDGE_OPTION
@_QUESTIONS_OPTION
def rules_diff(
    old: Path, new: Path, knowledge_path: Path | None, questions_path: Path | None
) -> None:
    """Compare two tables on the question set (exit 1 if NEW is held back)."""
    from knowledge.regression import Bars, compare, table_changes

    before = _load(old, knowledge_path)
    after = _load(new, knowledge_path)
    questions = load_questions(questions_path or default_questions_path())
    report = compare(before.router, after.router, questions)
    click.echo(f"Change: {table_changes(before.table, after.table).describe()}")
    click.echo(report.summary(limit=50))
    failures = report.failures(Bars())
    if failures:
        click.echo("Would be held back: " + "; ".join(failures))
        sys.exit(1)


@rules.command("history")
@_DATABASE_OPTION
def rules_history(database_url: str | None) -> None:
    """List the routing tables that went live, newest first."""
    from sqlmodel import Session

    from bot.services import rules_admin

    with Session(_database(database_url)) as session:
        versions = rules_admin.history(session=session, limit=50)
    if not versions:
        click.echo("No routing table has gone live yet.")
        return
    for version in versions:
        figures = json.loads(version.figures or "{}")
        click.echo(
            f"{version.activated_at:%Y-%m-%d %H:%M} UTC  {version.content_hash[:12]}  "
            f"{version.source:<8} by {version.activated_by or '—'}  correct "
            f"{figures.get('correct', 0):.3f} precision {figures.get('answer_precision', 0):.3f}"
            f"  {version.summary}"
        )


@rules.command("suggest")
@_RULES_OPTION
@_KNOWLEDGE_OPTION
@_QUESTIONS_OPTION
@_DATABASE_OPTION
@click.option("--days", type=int, default=90, show_default=True, help="How far back to look.")
def rules_suggest(
    rules_path: Path | None,
    knowledge_path: Path | None,
    questions_path: Path | None,
    database_url: str | None,
    days: int,
) -> None:
    """Propose keywords and examples from questions the router missed."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import Session

    from bot.services.suggestions import traffic
    from knowledge.suggest import suggest

    routing = _load(rules_path, knowledge_path)
    with Session(_database(database_url)) as session:
        log = traffic(session=session, since=datetime.now(UTC) - timedelta(days=days))
    questions = load_questions(questions_path or default_questions_path())
    click.echo(suggest(routing.table, routing.router, log, questions).describe())


@main.group("db")
def db_group() -> None:
    """The database schema."""


@db_group.command("upgrade")
@_DATABASE_OPTION
def db_upgrade(database_url: str | None) -> None:
    """Apply the schema migrations (the bot also does this when it starts)."""
    from bot.db import current_revision

    engine = _database(database_url)
    click.echo(f"Database at revision {current_revision(engine)}.")


@main.group("associations")
def associations_group() -> None:
    """The association register."""


@associations_group.command("export")
@_DATABASE_OPTION
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the CSV here instead of to stdout.",
)
def associations_export(database_url: str | None, output: Path | None) -> None:
    """Export the register as CSV for the city's own systems."""
    from sqlmodel import Session

    from bot.services.associations import export_csv

    with Session(_database(database_url)) as session:
        data = export_csv(session=session)
    if output is None:
        click.echo(data, nl=False)
    else:
        output.write_text(data, encoding="utf-8")
        click.echo(f"Wrote {output}")


_BARS = {
    "correct": ("--min-correct", "at least"),
    "helped": ("--min-helped", "at least"),
    "answer_precision": ("--min-precision", "at least"),
    "oos_recall": ("--min-oos-recall", "at least"),
    "wrong_answers": ("--max-wrong", "at most"),
}


@main.command("eval")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@_RULES_OPTION
@_KNOWLEDGE_OPTION
@click.option("--min-correct", type=float, default=None, help="Fail below this share correct.")
@click.option("--min-helped", type=float, default=None, help="Fail below this share helped.")
@click.option("--min-precision", type=float, default=None, help="Fail below this precision.")
@click.option("--min-oos-recall", type=float, default=None, help="Fail below this OOS recall.")
@click.option("--max-wrong", type=float, default=None, help="Fail above this wrong-answer rate.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_command(
    file: Path,
    rules_path: Path | None,
    knowledge_path: Path | None,
    min_correct: float | None,
    min_helped: float | None,
    min_precision: float | None,
    min_oos_recall: float | None,
    max_wrong: float | None,
    as_json: bool,
) -> None:
    """Score the router on FILE (JSON lines of {"text", "expect"}); list the misses."""
    routing = _load(rules_path, knowledge_path)
    try:
        questions = load_questions(file)
    except QuestionSetInvalid as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    figures = evaluate(questions, routing.router.route)
    with_category = (
        evaluate(questions, routing.router.route, use_category=True)
        if any(q.category for q in questions)
        else None
    )
    values = figures.as_dict()
    bars = {
        "correct": min_correct,
        "helped": min_helped,
        "answer_precision": min_precision,
        "oos_recall": min_oos_recall,
        "wrong_answers": max_wrong,
    }
    failed = [
        name
        for name, bar in bars.items()
        if bar is not None
        and (values[name] > bar if name == "wrong_answers" else values[name] < bar)
    ]
    if as_json:
        click.echo(json.dumps({"n": figures.total, **values, "failed": failed}))
    else:
        misses = [o for o in figures.outcomes if not o.correct]
        if misses:
            click.echo(f"Not correct ({len(misses)}):")
            for outcome in misses:
                click.echo("  " + describe_miss(outcome))
            click.echo()
        counts = figures.action_counts()
        click.echo(
            f"{file}: {figures.total} questions — answer {counts['answer']}, "
            f"clarify {counts['clarify']}, escalate {counts['escalate']}"
        )
        click.echo(
            "correct {correct:.3f} | helped {helped:.3f} | answer precision "
            "{answer_precision:.3f} | out-of-scope recall {oos_recall:.3f} | wrong answers "
            "{wrong_answers:.3f}".format(**values)
        )
        if with_category is not None:
            gained = with_category.correct - figures.correct
            shown = with_category.as_dict()
            click.echo(
                f"with the association's category: correct {shown['correct']:.3f} | helped "
                f"{shown['helped']:.3f} | answer precision {shown['answer_precision']:.3f} | "
                f"wrong answers {shown['wrong_answers']:.3f} (correct {gained:+.3f})"
            )
        for name in failed:
            option, relation = _BARS[name]
            click.echo(
                f"FAILED: {name} {values[name]:.3f} is not {relation} {bars[name]} ({option})"
            )
    if failed:
        sys.exit(1)
