"""The bot's languages: one TOML file per language in this folder, read once at start.

A file ``xx.toml`` makes ``xx`` (the Telegram/ISO 639-1 code) a supported language. It holds a
``[language]`` block (its own name, text direction, the language detector's code, which article
versions to show where one is missing), ``[names]`` (every supported language named in it),
``[calendar]`` (weekdays, months, how a deadline is written), optionally ``[departments]`` (an
explanation of each department's Swedish name) and ``[texts]``: every message the bot sends, as
Telegram HTML with ``{placeholders}``. Swedish (``sv.toml``) is the default and the reference:
every other file must have the same keys with the same placeholders. A city adds a language by
adding a file; no code changes.
"""

from __future__ import annotations

import functools
import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

logger = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).resolve().parent
DEFAULT_LANGUAGE = "sv"
_CODE = re.compile(r"^[a-z]{2,3}$")
_PLACEHOLDER = re.compile(r"{(\w*)}")
DUE_PLACEHOLDERS = frozenset({"weekday", "day", "month", "hour", "minute"})


class LocaleInvalid(Exception):
    """One or more locale files cannot be used; each error names the file."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class _LanguageBlock(_Strict):
    name: str = Field(min_length=1, max_length=64)
    direction: Literal["ltr", "rtl"]
    detector: str = Field(pattern=r"^[a-z]{2}$")
    article_fallbacks: tuple[str, ...] = ()


class _CalendarBlock(_Strict):
    weekdays: tuple[str, ...] = Field(min_length=7, max_length=7)
    months: tuple[str, ...] = Field(min_length=12, max_length=12)
    due: str = Field(min_length=1)


class _LocaleFile(_Strict):
    language: _LanguageBlock
    names: dict[str, str]
    calendar: _CalendarBlock
    departments: dict[str, str] = {}
    texts: dict[str, str]


@dataclass(frozen=True)
class Locale:
    """One language: its metadata and its texts."""

    code: str
    name: str
    direction: Literal["ltr", "rtl"]
    detector: str
    article_fallbacks: tuple[str, ...]
    names: Mapping[str, str]
    weekdays: tuple[str, ...]
    months: tuple[str, ...]
    due: str
    departments: Mapping[str, str]
    texts: Mapping[str, str]
    path: str

    @property
    def rtl(self) -> bool:
        return self.direction == "rtl"


@dataclass(frozen=True)
class Catalogue:
    """Every supported language, the default first."""

    locales: Mapping[str, Locale]
    default: str = DEFAULT_LANGUAGE

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.locales)

    @property
    def reference(self) -> Locale:
        return self.locales[self.default]

    def locale(self, language: str) -> Locale:
        """The locale for ``language``; the default one for a language not supported."""
        return self.locales.get(language) or self.reference

    def template(self, key: str, language: str) -> tuple[str, Locale]:
        """The text ``key`` and the locale it comes from (the default's where it is missing)."""
        locale = self.locale(language)
        found = locale.texts.get(key)
        if found is not None:
            return found, locale
        return self.reference.texts[key], self.reference

    def problems(self) -> list[str]:
        """What a complete catalogue must not have: missing or extra keys, other placeholders,
        languages without a name. The bot still runs (missing texts fall back to Swedish)."""
        found: list[str] = []
        reference = self.reference
        for locale in self.locales.values():
            for key in sorted(set(reference.texts) - set(locale.texts)):
                found.append(f"{locale.path}: text '{key}' is missing; translate it")
            for key in sorted(set(locale.texts) - set(reference.texts)):
                found.append(f"{locale.path}: text '{key}' is not in {reference.path}; remove it")
            for key in sorted(set(locale.texts) & set(reference.texts)):
                wanted, have = placeholders(reference.texts[key]), placeholders(locale.texts[key])
                if wanted != have:
                    found.append(
                        f"{locale.path}: text '{key}' has placeholders {sorted(have)}, "
                        f"the Swedish one {sorted(wanted)}; use the same"
                    )
            for code in self.locales:
                if not locale.names.get(code, "").strip():
                    found.append(f"{locale.path}: [names] has no name for '{code}'; add it")
            for code in locale.article_fallbacks:
                if code not in self.locales:
                    found.append(f"{locale.path}: article_fallbacks names '{code}', no file")
        return found


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def load_catalogue(directory: Path = LOCALES_DIR) -> Catalogue:
    """Read every ``*.toml`` in ``directory``; every error of every file raised together."""
    errors: list[str] = []
    locales: dict[str, Locale] = {}
    for path in sorted(directory.glob("*.toml")):
        locale = _read_locale(path, errors)
        if locale is not None:
            locales[locale.code] = locale
    if DEFAULT_LANGUAGE not in locales and not errors:
        errors.append(f"{directory}: there is no {DEFAULT_LANGUAGE}.toml (the default language)")
    if errors:
        raise LocaleInvalid(errors)
    reference = locales[DEFAULT_LANGUAGE]
    # A placeholder the code does not fill would crash the message: never accepted.
    for locale in locales.values():
        for key, template in locale.texts.items():
            extra = placeholders(template) - placeholders(reference.texts.get(key, template))
            if extra:
                errors.append(
                    f"{locale.path}: text '{key}' uses {sorted(extra)}, which the Swedish text "
                    "does not; remove them"
                )
    if errors:
        raise LocaleInvalid(errors)
    ordered = {DEFAULT_LANGUAGE: reference} | {
        code: locale for code, locale in locales.items() if code != DEFAULT_LANGUAGE
    }
    catalogue = Catalogue(locales=ordered)
    for problem in catalogue.problems():
        logger.warning("%s", problem)
    return catalogue


def _read_locale(path: Path, errors: list[str]) -> Locale | None:
    code = path.stem
    if not _CODE.match(code):
        errors.append(f"{path}: name the file by its language code, e.g. ar.toml")
        return None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        errors.append(f"{path}: cannot read the file as UTF-8 ({exc})")
        return None
    except tomllib.TOMLDecodeError as exc:
        errors.append(f"{path}: not valid TOML: {exc}")
        return None
    try:
        parsed = _LocaleFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            errors.append(f"{path}: {where}: {error['msg']}")
        return None
    due = placeholders(parsed.calendar.due)
    if not due <= DUE_PLACEHOLDERS:
        errors.append(
            f"{path}: calendar.due may use only {sorted(DUE_PLACEHOLDERS)}, not {sorted(due)}"
        )
        return None
    meta = parsed.language
    return Locale(
        code=code,
        name=meta.name,
        direction=meta.direction,
        detector=meta.detector,
        article_fallbacks=meta.article_fallbacks,
        names=dict(parsed.names),
        weekdays=parsed.calendar.weekdays,
        months=parsed.calendar.months,
        due=parsed.calendar.due,
        departments=dict(parsed.departments),
        texts=dict(parsed.texts),
        path=str(path),
    )


@functools.cache
def shipped_catalogue() -> Catalogue:
    """The catalogue in this folder, read on first use (at start) and kept."""
    return load_catalogue(LOCALES_DIR)
