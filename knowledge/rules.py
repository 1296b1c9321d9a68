"""The routing table (`routing_rules.yaml`): validated, read-only models and a line-aware loader.

A table is parsed and validated completely before anything uses it; any problem raises
``RulesInvalid`` carrying every error with the file, the line and what to change, so that a broken
file is never half-applied.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator
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

from knowledge.text import LANGUAGES, Language

ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"


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


# The table holds phrases in the languages ``knowledge.text`` can analyse. A flat list in the
# YAML is Swedish; ``{sv: [...], en: [...], ar: [...]}`` gives one list per language.
# The fields written as phrases per language, for error messages about an unknown language.
_PHRASE_FIELDS = frozenset(
    {"keywords", "examples", "person_phrases", "out_of_scope", "outside_places"}
)


class Phrases(_Frozen):
    """Phrases per language: a flat YAML list (Swedish) or one list per language.

    ``len()`` counts the phrases of every language; iterating, or ``all()``, gives them in the
    order sv, en, ar.
    """

    sv: tuple[str, ...] = ()
    en: tuple[str, ...] = ()
    ar: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _flat_list_is_swedish(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return {"sv": value}
        if not isinstance(value, dict | Phrases):
            raise ValueError(
                f"must be a list (one '- item' per line) or one list per language "
                f"({', '.join(f'{language}:' for language in LANGUAGES)}), not {value!r}"
            )
        return value

    @field_validator(*LANGUAGES)
    @classmethod
    def _no_blank_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            if not entry.strip():
                raise ValueError("an entry is empty; remove it or write the words")
        return tuple(entry.strip() for entry in value)

    def of(self, language: Language) -> tuple[str, ...]:
        """The phrases written in ``language``."""
        return tuple(getattr(self, language))

    def all(self) -> tuple[str, ...]:
        return (*self.sv, *self.en, *self.ar)

    def by_language(self) -> Iterator[tuple[Language, str]]:
        for language in LANGUAGES:
            for phrase in self.of(language):
                yield language, phrase

    def adding(self, language: Language, phrases: Iterable[str]) -> Phrases:
        """A copy with ``phrases`` appended to ``language`` (those already there are skipped)."""
        current = list(self.of(language))
        current += [phrase for phrase in phrases if phrase not in current]
        return self.model_copy(update={language: tuple(current)})

    def __len__(self) -> int:
        return len(self.sv) + len(self.en) + len(self.ar)

    # Iterating gives the phrases (not pydantic's field/value pairs), so that code written for
    # the flat lists (``for example in rule.examples``) keeps working.
    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self.all())


class Rule(_Frozen):
    id: str = Field(pattern=ID_PATTERN, max_length=64)
    department: str
    article: str | None = None
    # The answer depends on the kind of association ("what grants can we apply for?"): with a
    # registered association the router answers for its category (see ``categories``).
    by_category: bool = False
    keywords: Phrases = Phrases()
    examples: Phrases = Phrases()

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
    """What goes to the coordinator.

    A request for a person (``person_phrases``: always), what reads like a follow-up or complaint
    (``examples``) or like something outside the city's business (``out_of_scope``), and
    questions naming another municipality (``outside_places``).
    """

    person_phrases: Phrases = Phrases()
    examples: Phrases = Phrases()
    out_of_scope: Phrases = Phrases()
    outside_places: Phrases = Phrases()


class CategoryRoute(_Frozen):
    """Where a category-dependent question goes for one kind of association."""

    department: str
    article: str | None = None


class RoutingTable(_Frozen):
    version: int = Field(ge=1, le=1)
    thresholds: Thresholds
    escalation: Escalation = Escalation()
    categories: dict[str, CategoryRoute] = Field(default_factory=dict)
    departments: tuple[Department, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = Field(min_length=1)

    @functools.cached_property
    def department_by_id(self) -> dict[str, Department]:
        return {department.id: department for department in self.departments}

    @functools.cached_property
    def rule_by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}

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
    """1-based line of each path in the YAML document, e.g. ("rules", 3, "department")."""

    def __init__(self, offset: int = 0) -> None:
        self.lines: dict[tuple[Any, ...], int] = {}
        self.offset = offset

    def line_of(self, path: tuple[Any, ...]) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


# A document that expands to more nodes than this (e.g. aliases nested to blow up) is refused.
_MAX_NODES = 2_000_000


class _Converter:
    """YAML nodes → plain Python, recording lines and every structural problem on the way."""

    def __init__(self, lines: _LineMap) -> None:
        self.lines = lines
        self.problems: list[tuple[int, str]] = []
        self._scalars = yaml.constructor.SafeConstructor()
        self._open: set[int] = set()
        self._count = 0

    def line(self, node: yaml.Node) -> int:
        return int(node.start_mark.line) + 1 + self.lines.offset

    def convert(self, node: yaml.Node, path: tuple[Any, ...]) -> Any:
        self.lines.lines.setdefault(path, self.line(node))
        self._count += 1
        if self._count > _MAX_NODES:
            raise _TooLarge(self.line(node))
        if id(node) in self._open:
            self.problems.append((self.line(node), "an alias refers to itself; remove the '*'"))
            return None
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self._open.add(id(node))
            try:
                return (
                    self._mapping(node, path)
                    if isinstance(node, yaml.MappingNode)
                    else [
                        self.convert(item, (*path, index)) for index, item in enumerate(node.value)
                    ]
                )
            finally:
                self._open.discard(id(node))
        try:
            return self._scalars.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.problems.append(
                (
                    self.line(node),
                    f"'{_shorten(str(node.value))}' cannot be read ({reason}); put it in quotes "
                    "or correct it",
                )
            )
            return None

    def _mapping(self, node: yaml.MappingNode, path: tuple[Any, ...]) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.convert(key_node, (*path, "<key>"))
            if not isinstance(key, str | int | float | bool) or key is None:
                self.problems.append((self.line(key_node), "a key must be plain text"))
                continue
            if key in result:
                self.problems.append(
                    (self.line(key_node), f"'{key}' appears twice here; keep one of them")
                )
            self.lines.lines[(*path, key)] = self.line(key_node)
            result[key] = self.convert(value_node, (*path, key))
        return result


class _TooLarge(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def parse_yaml(
    text: str, file: str, *, line_offset: int = 0
) -> tuple[Any, _LineMap, list[RuleError]]:
    """Parse YAML keeping line numbers.

    Returns the data, the line map and the problems that still let the rest be checked (a key
    given twice — YAML would silently keep the last — or a value that cannot be read). Text that
    is not YAML at all raises ``RulesInvalid``. ``line_offset`` is added to every line (front
    matter starts below the file's first line).
    """
    lines = _LineMap(line_offset)
    try:
        loader_class: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        root = yaml.compose(text, Loader=loader_class)
    except yaml.MarkedYAMLError as exc:
        # An unclosed quote or a key without ':' is best shown where it began; anything else
        # (bad indentation, a tab) where the structure broke.
        if any(
            token in (exc.context or "")
            for token in ("quoted scalar", "block scalar", "simple key")
        ):
            mark = exc.context_mark or exc.problem_mark
        else:
            mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 + line_offset if mark else None
        problem = exc.problem or "not valid YAML"
        raise RulesInvalid(
            [
                RuleError(
                    file,
                    line,
                    f"this is not valid YAML ({problem}); check the quotes, the indentation and "
                    "that every 'key: value' and '- item' lines up with its neighbours",
                )
            ]
        ) from None
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (NUL, other control characters), often invisible in
        # an editor: say on which line. libyaml counts the position in UTF-8 bytes.
        before = text.encode("utf-8", "surrogatepass")[: exc.position]
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise RulesInvalid(
            [
                RuleError(
                    file,
                    before.count(b"\n") + 1 + line_offset,
                    f"the character U+{code:04X} is not allowed in YAML ({exc.reason}); remove "
                    "it (it may be invisible in the editor)",
                )
            ]
        ) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise RulesInvalid([RuleError(file, None, f"this is not valid YAML ({exc})")]) from None
    if root is None:
        return None, lines, []
    converter = _Converter(lines)
    try:
        data = converter.convert(root, ())
    except _TooLarge as exc:
        raise RulesInvalid(
            [
                RuleError(
                    file,
                    exc.line,
                    "the document expands to too much data (aliases?); write the entries out",
                )
            ]
        ) from None
    except RecursionError:
        raise RulesInvalid(
            [RuleError(file, None, "the document is nested too deeply; simplify it")]
        ) from None
    problems = [RuleError(file, line, message) for line, message in converter.problems]
    return data, lines, problems


_TYPE_WORDS = {
    "tuple_type": "a list (one '- item' per line)",
    "list_type": "a list (one '- item' per line)",
    "dict_type": "a mapping ('key: value' lines)",
    "model_type": "a mapping ('key: value' lines)",
    "model_attributes_type": "a mapping ('key: value' lines)",
    "string_type": "text",
    "float_parsing": "a number such as 0.5",
    "float_type": "a number such as 0.5",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "int_parsing_size": "a whole number of a sensible size",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}


def _shorten(shown: str, limit: int = 80) -> str:
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden" and len(error["loc"]) >= 2 and error["loc"][-2] in _PHRASE_FIELDS:
        return (
            f"{loc}: '{error['loc'][-1]}' is not a language of the routing table; "
            f"use {', '.join(LANGUAGES[:-1])} or {LANGUAGES[-1]} (a flat list is Swedish)"
        )
    if kind == "extra_forbidden":
        return f"unknown key '{error['loc'][-1]}' at {loc}; remove it or check its spelling"
    if kind == "missing":
        return f"'{loc}' is missing; add it"
    if kind == "string_pattern_mismatch":
        return (
            f"{loc} = {error['input']!r} is not a valid id; use lower-case letters, digits, "
            "'_' or '-'"
        )
    if kind in _TYPE_WORDS:
        return f"{loc} must be {_TYPE_WORDS[kind]}, not {_shorten(repr(error['input']))}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message


def _items(data: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    value = data.get(key)
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, dict)]


def _cross_checks(
    data: dict[str, Any], lines: _LineMap, known_articles: set[str] | None
) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Checks across entries, on the raw data so that they run beside the schema checks."""
    departments: dict[str, tuple[Any, ...]] = {}
    for index, department_entry in _items(data, "departments"):
        department_id = department_entry.get("id")
        if not isinstance(department_id, str):
            continue
        path = ("departments", index, "id")
        if department_id in departments:
            yield (
                path,
                f"department id '{department_id}' is used twice (also on line "
                f"{lines.line_of(departments[department_id])}); give each department its own id",
            )
        departments.setdefault(department_id, path)
    categories = data.get("categories")
    if isinstance(categories, dict):
        for name, route in categories.items():
            if not isinstance(route, dict):
                continue
            department = route.get("department")
            if isinstance(department, str) and department not in departments:
                yield (
                    ("categories", name, "department"),
                    f"category '{name}' points at department '{department}', which is not in "
                    "'departments'; add it there or fix the id",
                )
            article = route.get("article")
            if (
                isinstance(article, str)
                and known_articles is not None
                and article not in known_articles
            ):
                yield (
                    ("categories", name, "article"),
                    f"category '{name}' shows article '{article}', which is not in the "
                    "knowledge base; fix the id or remove the 'article' line",
                )
    rules: dict[str, tuple[Any, ...]] = {}
    for index, rule in _items(data, "rules"):
        rule_id = rule.get("id")
        if isinstance(rule_id, str):
            path = ("rules", index, "id")
            if rule_id in rules:
                yield (
                    path,
                    f"rule id '{rule_id}' is used twice (also on line "
                    f"{lines.line_of(rules[rule_id])}); rename one of them",
                )
            rules.setdefault(rule_id, path)
        department = rule.get("department")
        if isinstance(department, str) and department not in departments:
            yield (
                ("rules", index, "department"),
                f"rule '{rule_id}' points at department '{department}', which is not in "
                "'departments'; add it there or use one of: "
                + ", ".join(sorted(departments)[:20]),
            )
        article = rule.get("article")
        if (
            isinstance(article, str)
            and known_articles is not None
            and article not in known_articles
        ):
            yield (
                ("rules", index, "article"),
                f"rule '{rule_id}' shows article '{article}', which is not in the "
                "knowledge base; fix the id or remove the 'article' line",
            )


def parse_rules(text: str, file: str, known_articles: set[str] | None = None) -> RoutingTable:
    """Validate a routing table given as YAML text; raise ``RulesInvalid`` with every error."""
    data, lines, errors = parse_yaml(text, file)
    if not isinstance(data, dict):
        raise RulesInvalid(
            [
                *errors,
                RuleError(
                    file,
                    lines.line_of(()) or 1,
                    "the file must be a mapping with 'version', "
                    "'thresholds', 'departments' and 'rules'",
                ),
            ]
        )
    table: RoutingTable | None = None
    try:
        table = RoutingTable.model_validate(data)
    except ValidationError as exc:
        errors.extend(
            RuleError(file, lines.line_of(tuple(error["loc"])), _describe(dict(error)))
            for error in exc.errors()
        )
    errors.extend(
        RuleError(file, lines.line_of(path), message)
        for path, message in _cross_checks(data, lines, known_articles)
    )
    if errors or table is None:
        raise RulesInvalid(sorted(errors, key=lambda error: error.line or 0))
    return table


def load_rules(path: Path, known_articles: set[str] | None = None) -> RoutingTable:
    """Read and validate ``path``; unreadable files are reported like invalid ones."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RulesInvalid(
            [RuleError(str(path), None, "file not found; check the path")]
        ) from None
    except OSError as exc:
        raise RulesInvalid([RuleError(str(path), None, f"cannot read the file ({exc})")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulesInvalid(
            [
                RuleError(
                    str(path),
                    raw[: exc.start].count(b"\n") + 1,
                    f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} here); "
                    "save it as UTF-8",
                )
            ]
        ) from None
    return parse_rules(text, str(path), known_articles)
