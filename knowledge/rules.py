"""The routing table (`routing_rules.yaml`): validated, read-only models and a line-aware loader.

A table is parsed and validated completely before anything uses it; any problem raises
``RulesInvalid`` carrying every error with the file, the line and what to change, so that a broken
file is never half-applied.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"
_ID_RE = re.compile(ID_PATTERN)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Contact(_Frozen):
    """How to reach a department. ``example: true`` marks details the city must verify."""

    phone: str | None = None
    email: str | None = None
    web: str | None = None
    hours: str | None = None
    example: bool = False


class Department(_Frozen):
    id: str = Field(pattern=ID_PATTERN, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    name_en: str | None = Field(default=None, max_length=200)
    description: str = Field(default="", max_length=1000)
    external: bool = False
    contact: Contact = Contact()


class Rule(_Frozen):
    id: str = Field(pattern=ID_PATTERN, max_length=64)
    department: str
    article: str | None = None
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()

    @field_validator("keywords", "examples")
    @classmethod
    def _no_blank_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if not entry.strip():
                raise ValueError("an entry is empty; remove it or write the words")
        return tuple(entry.strip() for entry in value)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.keywords and not self.examples:
            raise ValueError(
                f"rule '{self.id}' has neither keywords nor examples; add at least one of them"
            )
        return self


class Thresholds(_Frozen):
    """When to answer, when to offer choices and when to hand the question to the coordinator."""

    answer: float = Field(ge=0.0, le=1.0)
    answer_margin: float = Field(default=0.0, ge=0.0, le=1.0)
    clarify: float = Field(ge=0.0, le=1.0)
    max_candidates: int = Field(default=3, ge=2, le=4)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.clarify > self.answer:
            raise ValueError(
                f"thresholds out of order: clarify ({self.clarify}) must not be above "
                f"answer ({self.answer}); lower clarify or raise answer"
            )
        return self


class Escalation(_Frozen):
    """What goes to the coordinator: a request for a person (``person_phrases``: always), what reads
    like a follow-up or complaint (``examples``) or like something outside the city's business
    (``out_of_scope``), and questions naming another municipality (``outside_places``)."""

    person_phrases: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    out_of_scope: tuple[str, ...] = ()
    outside_places: tuple[str, ...] = ()


class RoutingTable(_Frozen):
    version: int = Field(ge=1, le=1)
    thresholds: Thresholds
    escalation: Escalation = Escalation()
    departments: tuple[Department, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = Field(min_length=1)

    @property
    def department_by_id(self) -> dict[str, Department]:
        return {department.id: department for department in self.departments}

    def content_hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class RuleError:
    """One problem in a rules file, located for the person who edits it."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class RulesInvalid(Exception):
    """The routing table cannot be used; ``errors`` says every reason."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(error) for error in errors))


# ---------------------------------------------------------------------------------------------
# Loading


class _LineMap:
    """Line numbers (1-based) of each path in the YAML document, e.g. ("rules", 3, "department")."""

    def __init__(self) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _to_python(
    node: yaml.Node,
    path: tuple[Any, ...],
    lines: _LineMap,
    errors: list[str],
    scalars: yaml.constructor.SafeConstructor,
) -> Any:
    lines.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _to_python(key_node, (*path, "<key>"), lines, errors, scalars)
            if not isinstance(key, str | int | float | bool) or key is None:
                errors.append(f"{key_node.start_mark.line + 1}\x00a key must be plain text")
                continue
            if key in result:
                errors.append(
                    f"{key_node.start_mark.line + 1}\x00'{key}' appears twice here; "
                    "keep one of them"
                )
            lines.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _to_python(value_node, (*path, key), lines, errors, scalars)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(item, (*path, index), lines, errors, scalars)
            for index, item in enumerate(node.value)
        ]
    return scalars.construct_object(node)


def parse_yaml(text: str, file: str) -> tuple[Any, _LineMap]:
    """Parse YAML keeping line numbers; duplicate keys are errors (YAML silently keeps the last)."""
    lines = _LineMap()
    try:
        loader_class: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        root = yaml.compose(text, Loader=loader_class)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "not valid YAML"
        raise RulesInvalid(
            [
                RuleError(
                    file,
                    line,
                    f"this is not valid YAML ({problem}); check the indentation and that every "
                    "'key: value' and '- item' lines up with its neighbours",
                )
            ]
        ) from exc
    except yaml.YAMLError as exc:
        raise RulesInvalid([RuleError(file, None, f"this is not valid YAML ({exc})")]) from exc
    if root is None:
        return None, lines
    problems: list[str] = []
    data = _to_python(root, (), lines, problems, yaml.constructor.SafeConstructor())
    if problems:
        errors = []
        for problem in problems:
            line_number, message = problem.split("\x00", 1)
            errors.append(RuleError(file, int(line_number), message))
        raise RulesInvalid(errors)
    return data, lines


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{error['loc'][-1]}' at {loc}; remove it or check its spelling"
    if kind == "missing":
        return f"'{loc}' is missing; add it"
    if kind == "string_pattern_mismatch":
        return (
            f"{loc} = {error['input']!r} is not a valid id; use lower-case letters, digits, "
            "'_' or '-'"
        )
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message


def _cross_checks(
    table: RoutingTable, known_articles: set[str] | None
) -> Iterator[tuple[tuple[Any, ...], str]]:
    seen: dict[str, int] = {}
    for index, department in enumerate(table.departments):
        if department.id in seen:
            yield (
                ("departments", index, "id"),
                f"department id '{department.id}' is used twice (also item {seen[department.id]}); "
                "give each department its own id",
            )
        seen.setdefault(department.id, index)
    seen_rules: dict[str, int] = {}
    for index, rule in enumerate(table.rules):
        if rule.id in seen_rules:
            yield (
                ("rules", index, "id"),
                f"rule id '{rule.id}' is used twice; rename one of them",
            )
        seen_rules.setdefault(rule.id, index)
        if rule.department not in seen:
            yield (
                ("rules", index, "department"),
                f"rule '{rule.id}' points at department '{rule.department}', which is not in "
                "'departments'; add it there or use one of: " + ", ".join(sorted(seen)[:20]),
            )
        if rule.article is not None and known_articles is not None:
            if rule.article not in known_articles:
                yield (
                    ("rules", index, "article"),
                    f"rule '{rule.id}' shows article '{rule.article}', which is not in the "
                    "knowledge base; fix the id or remove the 'article' line",
                )


def parse_rules(text: str, file: str, known_articles: set[str] | None = None) -> RoutingTable:
    """Validate a routing table given as YAML text; raise ``RulesInvalid`` with every error."""
    data, lines = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise RulesInvalid(
            [
                RuleError(
                    file,
                    lines.line_of(()),
                    "the file must be a mapping with 'version', "
                    "'thresholds', 'departments' and 'rules'",
                )
            ]
        )
    try:
        table = RoutingTable.model_validate(data)
    except ValidationError as exc:
        errors = [
            RuleError(file, lines.line_of(tuple(error["loc"])), _describe(dict(error)))
            for error in exc.errors()
        ]
        raise RulesInvalid(errors) from None
    cross = [
        RuleError(file, lines.line_of(path), message)
        for path, message in _cross_checks(table, known_articles)
    ]
    if cross:
        raise RulesInvalid(cross)
    return table


def load_rules(path: Path, known_articles: set[str] | None = None) -> RoutingTable:
    """Read and validate ``path``; unreadable files are reported like invalid ones."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesInvalid(
            [RuleError(str(path), None, "file not found; check the path")]
        ) from None
    except UnicodeDecodeError:
        raise RulesInvalid(
            [RuleError(str(path), None, "the file is not UTF-8 text; save it as UTF-8")]
        ) from None
    except OSError as exc:
        raise RulesInvalid([RuleError(str(path), None, f"cannot read the file ({exc})")]) from None
    return parse_rules(text, str(path), known_articles)


def valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value))
