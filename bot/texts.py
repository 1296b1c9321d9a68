"""Everything the bot says, in every supported language, and how it is put into Telegram HTML.

The texts live in one file per language (``bot/locales/*.toml``); this module fills them in.
Values a person typed are HTML-escaped when they are put into a text; pre-formatted HTML is
passed as ``Html``. Nothing longer than Telegram's 4,096 characters is sent unsplit.

Right-to-left languages (``direction = "rtl"``, e.g. Arabic): Telegram sets each paragraph's
direction from its first strong character, so every line starts with a RIGHT-TO-LEFT MARK;
values put into a text (names, case numbers, what a person typed) are wrapped in FIRST STRONG
ISOLATE … POP DIRECTIONAL ISOLATE so Latin or mixed text keeps its own order without moving the
Arabic around it; and a ``/command`` is isolated left-to-right so its slash stays in front.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.locales import Locale, shipped_catalogue
from knowledge.rules import Department

TELEGRAM_LIMIT = 4096


class Html(str):
    """Text that is already valid Telegram HTML and must not be escaped again."""

    __slots__ = ()


RLM = "\u200f"  # RIGHT-TO-LEFT MARK: starts a right-to-left paragraph
LRI = "\u2066"  # LEFT-TO-RIGHT ISOLATE
FSI = "\u2068"  # FIRST STRONG ISOLATE: direction from the value's own first letter
PDI = "\u2069"  # POP DIRECTIONAL ISOLATE: ends LRI/FSI
# A command in running text, e.g. "/language" (not the "/b" of "</b>", nor a path).
_COMMAND = re.compile(r"(?<![^\s(])/[A-Za-z0-9_]+")


def languages() -> tuple[str, ...]:
    """The supported languages (one locale file each), Swedish first."""
    return shipped_catalogue().languages


def locale(language: str) -> Locale:
    return shipped_catalogue().locale(language)


def text(key: str, language: str, /, **values: object) -> Html:
    """The catalogue text ``key`` in ``language`` (Swedish if missing), values escaped."""
    template, source = shipped_catalogue().template(key, language)
    escaped = {
        name: value if isinstance(value, Html) else _value(str(value), source.rtl)
        for name, value in values.items()
    }
    if not source.rtl:
        return Html(template.format(**escaped))
    template = _COMMAND.sub(lambda m: f"{LRI}{m.group(0)}{PDI}", template)
    return Html(right_to_left(template.format(**escaped)))


def _value(value: str, rtl: bool) -> str:
    escaped = html.escape(value, quote=False)
    if not rtl:
        return escaped
    return "\n".join(f"{FSI}{line}{PDI}" if line else line for line in escaped.split("\n"))


def right_to_left(message: str) -> str:
    """Every non-empty line starts a right-to-left paragraph."""
    return "\n".join(
        f"{RLM}{line}" if line and not line.startswith(RLM) else line
        for line in message.split("\n")
    )


def language_name(code: str, in_language: str) -> str:
    """``code`` named in ``in_language`` ("arabiska" for ``ar`` in Swedish), else the code."""
    return locale(in_language).names.get(code, code)


def language_label(code: str, in_language: str) -> str:
    """The language for the desk: "arabiska (ar)"."""
    return f"{language_name(code, in_language)} ({code})"


def article_languages(language: str) -> tuple[str, ...]:
    """Which versions of an article to show, best first (the original comes last anyway)."""
    return (language, *locale(language).article_fallbacks)


def format_due(moment: datetime, zone: ZoneInfo, language: str) -> str:
    """A deadline as people write it: "fredag 27 november kl. 17.00"."""
    local = moment.astimezone(zone)
    calendar = locale(language)
    return calendar.due.format(
        weekday=calendar.weekdays[local.weekday()],
        day=local.day,
        month=calendar.months[local.month - 1],
        hour=f"{local.hour:02d}",
        minute=f"{local.minute:02d}",
    )


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


@functools.lru_cache(maxsize=512)
def markdown_to_html(markdown: str, language: str = "sv") -> Html:
    """The knowledge base's Markdown (bold, italic, lists, headings, links) as Telegram HTML.

    ``language`` is the article's: a right-to-left one gets its paragraphs marked so. Kept for
    the articles asked for most (the same few bodies, rendered for every answer otherwise).
    """
    lines = []
    for raw in markdown.splitlines():
        line = html.escape(raw.rstrip(), quote=False)
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            line = f"<b>{heading.group(1)}</b>"
        line = re.sub(r"^(\s*)[-*]\s+", lambda m: f"{m.group(1)}• ", line)
        line = _BOLD.sub(r"<b>\1</b>", line)
        line = _ITALIC.sub(r"<i>\1</i>", line)
        line = _LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', line)
        lines.append(line)
    rendered = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return Html(right_to_left(rendered) if locale(language).rtl else rendered)


def contact_card(department: Department, language: str) -> Html:
    lines = [text("contact_card", language, name=department_name(department, language))]
    contact = department.contact
    for field in ("phone", "email", "web", "hours"):
        value = getattr(contact, field)
        if value:
            lines.append(text(f"contact_{field}", language, value=value))
    return Html("\n".join(lines))


def department_name(department: Department, language: str) -> str:
    """The department's name for a member: its English name in English; in a language whose
    file explains the departments, the official Swedish name with that explanation."""
    explanation = locale(language).departments.get(department.id)
    if explanation and locale(language).rtl:
        return f"{explanation} – {LRI}{department.name}{PDI}"
    if explanation:
        return f"{department.name} – {explanation}"
    return department.name_en if language == "en" and department.name_en else department.name


def split_message(message: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split at paragraph, then line, then word boundaries into parts of at most ``limit``.

    Texts are built so that no HTML tag spans a line, so splitting between lines keeps every
    part valid; a single over-long line is cut between words (a typed text carries no tags).
    """
    if len(message) <= limit:
        return [message]
    parts: list[str] = []
    current = ""
    for piece in _pieces(message, limit):
        candidate = f"{current}\n{piece}" if current else piece
        if len(candidate) <= limit:
            current = candidate
        else:
            if current:
                parts.append(current)
            current = piece
    if current:
        parts.append(current)
    return parts


def _pieces(message: str, limit: int) -> Iterable[str]:
    for line in message.split("\n"):
        while len(line) > limit:
            cut = line.rfind(" ", 0, limit)
            cut = cut if cut > limit // 2 else limit
            # Never cut inside an HTML entity such as &amp;.
            amp = line.rfind("&", max(0, cut - 8), cut)
            if amp != -1 and ";" not in line[amp:cut]:
                cut = amp
            yield line[:cut]
            line = line[cut:].lstrip(" ")
        yield line
