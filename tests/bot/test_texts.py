"""The message catalogue and Telegram formatting: complete, escaped, never over the limit."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.texts import TELEGRAM_LIMIT, Html, languages, markdown_to_html, split_message, text
from knowledge.loading import Routing

ALLOWED_TAGS = {"b", "i", "u", "s", "a", "code", "pre", "blockquote"}


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unbalanced </{tag}>")


def assert_telegram_html(value: str) -> None:
    checker = _TagChecker()
    checker.feed(value)
    checker.close()
    assert not checker.problems and not checker.stack, (checker.problems, checker.stack)
    assert not re.search(r"&(?![a-z]+;|#\d+;)", value), "unescaped &"


def test_what_a_person_typed_is_escaped() -> None:
    rendered = text("case_line", "sv", reference="F-1", status="x", question="<b>hej</b> & då")
    assert "&lt;b&gt;hej&lt;/b&gt; &amp; då" in rendered
    assert_telegram_html(rendered)


def test_every_article_renders_as_valid_telegram_html(shipped_routing: Routing) -> None:
    for article in shipped_routing.knowledge.articles.values():
        rendered = markdown_to_html(article.body)
        assert_telegram_html(rendered)
        assert len(rendered) < TELEGRAM_LIMIT


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=0, max_size=12_000))
def test_split_messages_fit_and_lose_nothing(value: str) -> None:
    parts = split_message(value)
    assert all(len(part) <= TELEGRAM_LIMIT for part in parts)
    assert "".join(parts).replace("\n", "").replace(" ", "") == value.replace("\n", "").replace(
        " ", ""
    )


def test_long_html_splits_between_lines_with_tags_intact() -> None:
    line = text("case_line", "sv", reference="F-2026-0001", status="öppen", question="ord " * 20)
    message = Html("\n".join([line] * 200))
    parts = split_message(message)
    assert len(parts) > 1
    for part in parts:
        assert len(part) <= TELEGRAM_LIMIT
        assert_telegram_html(part)


@pytest.mark.parametrize("language", languages())
def test_privacy_notice_says_public_records_and_who_is_responsible(language: str) -> None:
    notice = text(
        "privacy",
        language,
        responsible="Kommunstyrelsen",
        url="https://x",
        question_days=30,
        case_days=730,
    )
    assert "allmän handling" in notice
    assert "Kommunstyrelsen" in notice and "https://x" in notice
    assert "30" in notice and "730" in notice  # the retention periods are named
