"""The knowledge base: Markdown articles with YAML front matter, validated like the rules."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from knowledge.rules import ID_PATTERN, RuleError, RulesInvalid, _describe, parse_yaml

# Telegram's message limit is 4,096 characters; an article leaves room for the contact card.
MAX_ARTICLE_CHARS = 3000


class ArticleMeta(BaseModel):
    # A tag such as 112 is written without quotes; it is still a tag.
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, coerce_numbers_to_str=True
    )

    id: str = Field(pattern=ID_PATTERN, max_length=64)
    title: str = Field(min_length=1, max_length=200)
    department: str
    tags: tuple[str, ...] = ()
    # A language code (sv, en, ar …): each supported language has a file in bot/locales.
    language: str
    translation_of: str | None = None
    # An easy-to-read version (lättläst) of ``translation_of``, in the same language.
    easy_read: bool = False
    verify: tuple[str, ...] = ()

    @field_validator("language")
    @classmethod
    def _language_code(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]{2,3}", value):
            raise ValueError(
                f"{value!r} is not a language code; use the code of a language the bot "
                "speaks, e.g. 'sv', 'en' or 'ar'"
            )
        return value


@dataclass(frozen=True)
class Article:
    meta: ArticleMeta
    body: str
    path: str
    id_line: int = 2

    @property
    def id(self) -> str:
        return self.meta.id


@dataclass(frozen=True)
class KnowledgeBase:
    articles: dict[str, Article]

    def get(
        self, article_id: str, language: str = "sv", fallbacks: Sequence[str] = ()
    ) -> Article | None:
        """The article in ``language``, else in the first of ``fallbacks`` it exists in, else
        the original."""
        original = self.articles.get(article_id)
        translations = self._translations
        for wanted in (language, *fallbacks):
            if original is not None and original.meta.language == wanted:
                return original
            translated = translations.get((article_id, wanted))
            if translated is not None:
                return translated
        return original

    def easy_read_of(self, article_id: str) -> Article | None:
        """The easy-to-read (lättläst) version of an article, when there is one."""
        return self._easy_read.get(article_id)

    # Looked up for every answer: indexed once (the first of each kind, in file order).
    @functools.cached_property
    def _translations(self) -> dict[tuple[str, str], Article]:
        found: dict[tuple[str, str], Article] = {}
        for article in self.articles.values():
            meta = article.meta
            if meta.translation_of and not meta.easy_read:
                found.setdefault((meta.translation_of, meta.language), article)
        return found

    @functools.cached_property
    def _easy_read(self) -> dict[str, Article]:
        found: dict[str, Article] = {}
        for article in self.articles.values():
            if article.meta.translation_of and article.meta.easy_read:
                found.setdefault(article.meta.translation_of, article)
        return found

    @property
    def ids(self) -> set[str]:
        return set(self.articles)


def parse_article(text: str, file: str) -> Article:
    """Parse one article; raise ``RulesInvalid`` naming the file and line of each problem."""
    lines = text.removeprefix("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise RulesInvalid(
            [
                RuleError(
                    file,
                    1,
                    "an article must start with a '---' line and "
                    "its front matter (id, title, department, tags, language)",
                )
            ]
        )
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise RulesInvalid(
            [RuleError(file, 1, "the front matter is not closed; add a '---' line after it")]
        ) from None
    data, line_map, problems = parse_yaml("\n".join(lines[1:end]), file, line_offset=1)
    if not isinstance(data, dict):
        raise RulesInvalid(
            [*problems, RuleError(file, 2, "the front matter must be 'key: value' lines")]
        )
    try:
        meta = ArticleMeta.model_validate(data)
    except ValidationError as exc:
        problems.extend(
            RuleError(file, line_map.line_of(tuple(e["loc"])), _describe(dict(e)))
            for e in exc.errors()
        )
    if problems:
        raise RulesInvalid(problems)
    body = "\n".join(lines[end + 1 :]).strip()
    if not body:
        raise RulesInvalid(
            [RuleError(file, end + 2, "the article has no text after the front matter; write it")]
        )
    if len(body) > MAX_ARTICLE_CHARS:
        raise RulesInvalid(
            [
                RuleError(
                    file,
                    end + 2,
                    f"the article is {len(body)} characters; "
                    f"shorten it to at most {MAX_ARTICLE_CHARS}",
                )
            ]
        )
    if Path(file).stem != meta.id:
        raise RulesInvalid(
            [
                RuleError(
                    file,
                    line_map.line_of(("id",)),
                    f"the id '{meta.id}' must match the file name "
                    f"'{Path(file).stem}'; rename one of them",
                )
            ]
        )
    return Article(meta=meta, body=body, path=file, id_line=line_map.line_of(("id",)) or 2)


def load_knowledge(directory: Path) -> KnowledgeBase:
    """Load every ``*.md`` below ``directory``; all errors of all files are raised together."""
    knowledge, errors = collect_knowledge(directory)
    if errors:
        raise RulesInvalid(errors)
    return knowledge


def collect_knowledge(directory: Path) -> tuple[KnowledgeBase, list[RuleError]]:
    """The valid articles below ``directory`` and the errors of the others."""
    errors: list[RuleError] = []
    articles: dict[str, Article] = {}
    if not directory.is_dir():
        return KnowledgeBase(articles={}), [
            RuleError(
                str(directory), None, "the knowledge folder does not exist; check KNOWLEDGE_PATH"
            )
        ]
    for path in sorted(directory.rglob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        try:
            article = parse_article(path.read_text(encoding="utf-8-sig"), str(path))
        except RulesInvalid as exc:
            errors.extend(exc.errors)
            continue
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(RuleError(str(path), None, f"cannot read the file as UTF-8 ({exc})"))
            continue
        if article.id in articles:
            errors.append(
                RuleError(
                    str(path),
                    article.id_line,
                    f"article id '{article.id}' is also used by "
                    f"{articles[article.id].path}; rename one",
                )
            )
        articles[article.id] = article
    for article in articles.values():
        meta = article.meta
        if meta.easy_read and meta.translation_of is None:
            errors.append(
                RuleError(
                    article.path,
                    None,
                    "an easy_read article needs translation_of: the id of the article it retells",
                )
            )
        if meta.translation_of is not None and meta.translation_of not in articles:
            errors.append(
                RuleError(
                    article.path,
                    None,
                    f"translation_of '{meta.translation_of}' names no article; fix the id",
                )
            )
    return KnowledgeBase(articles=articles), errors
