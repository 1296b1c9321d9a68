"""Finding and loading the routing table and knowledge base together, all-or-nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from knowledge.articles import KnowledgeBase, collect_knowledge
from knowledge.router import Router, RouterOptions
from knowledge.rules import RoutingTable, RuleError, RulesInvalid, load_rules

_PACKAGE_DIR = Path(__file__).resolve().parent


def default_rules_path() -> Path:
    """``RULES_PATH``, else ``./routing_rules.yaml``, else the table shipped with the package."""
    configured = os.environ.get("RULES_PATH")
    if configured:
        return Path(configured)
    for candidate in (
        Path("routing_rules.yaml"),
        _PACKAGE_DIR.parent / "routing_rules.yaml",
        _PACKAGE_DIR / "data" / "routing_rules.yaml",
    ):
        if candidate.is_file():
            return candidate
    return Path("routing_rules.yaml")


def default_knowledge_path() -> Path:
    configured = os.environ.get("KNOWLEDGE_PATH")
    return Path(configured) if configured else _PACKAGE_DIR / "articles"


def default_questions_path() -> Path:
    """The project's own question set for regression checks (grown by coordinators)."""
    configured = os.environ.get("QUESTIONS_PATH")
    return Path(configured) if configured else _PACKAGE_DIR / "questions.jsonl"


def default_cache_dir() -> Path:
    configured = os.environ.get("CONCIERGE_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "foreningslotsen"


@dataclass(frozen=True)
class Routing:
    """A routing table, the knowledge base it refers to, and the router built from both."""

    table: RoutingTable
    knowledge: KnowledgeBase
    router: Router
    rules_path: Path


def load_table(
    rules_path: Path, knowledge_path: Path | None
) -> tuple[RoutingTable, KnowledgeBase]:
    """Validate the table and (when given) the knowledge base; every error of both together."""
    errors: list[RuleError] = []
    knowledge = KnowledgeBase(articles={})
    if knowledge_path is not None:
        knowledge, errors = collect_knowledge(knowledge_path)
    try:
        table = load_rules(rules_path, knowledge.ids if knowledge_path is not None else None)
    except RulesInvalid as exc:
        raise RulesInvalid([*exc.errors, *errors]) from None
    departments = {department.id for department in table.departments}
    for article_id in {rule.article for rule in table.rules if rule.article}:
        article = knowledge.articles.get(article_id)
        if article is not None and article.meta.department not in departments:
            errors.append(
                RuleError(
                    article.path,
                    None,
                    f"department '{article.meta.department}' "
                    "is not in the routing table; use one of its department ids",
                )
            )
    if errors:
        raise RulesInvalid(errors)
    return table, knowledge


def load_routing(
    rules_path: Path | None = None,
    knowledge_path: Path | None = None,
    *,
    use_knowledge: bool = True,
    cache_dir: Path | None = None,
    options: RouterOptions | None = None,
) -> Routing:
    rules_path = rules_path or default_rules_path()
    if use_knowledge:
        knowledge_path = knowledge_path or default_knowledge_path()
    table, knowledge = load_table(rules_path, knowledge_path if use_knowledge else None)
    router = Router.build(table, options=options, cache_dir=cache_dir)
    return Routing(table=table, knowledge=knowledge, router=router, rules_path=rules_path)
