"""The locale files: complete in every language, valid Telegram HTML, right-to-left done right,
and a language added by adding a file."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lingua import IsoCode639_1

from bot.locales import (
    DEFAULT_LANGUAGE,
    LOCALES_DIR,
    LocaleInvalid,
    load_catalogue,
    placeholders,
    shipped_catalogue,
)
from bot.loopback import ApiError, parse_html
from bot.loopback._text import detect_entities
from bot.texts import (
    FSI,
    LRI,
    PDI,
    RLM,
    department_name,
    format_due,
    language_label,
    languages,
    markdown_to_html,
    text,
)
from knowledge.loading import Routing

CATALOGUE = shipped_catalogue()
REFERENCE = CATALOGUE.reference
OTHER_LANGUAGES = [code for code in CATALOGUE.languages if code != DEFAULT_LANGUAGE]


def commands_telegram_sees(html_text: str) -> set[str]:
    """The bot commands Telegram finds in a message (the loopback follows tdlib's rules)."""
    plain, _ = parse_html(html_text)
    return {
        re.sub(
            r"[^\w/]",
            "",
            plain.encode("utf-16-le")[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode(
                "utf-16-le"
            ),
        )
        for e in detect_entities(plain)
        if e["type"] == "bot_command"
    }


def sample_values(template: str) -> dict[str, object]:
    return {name: f"v-{name}" for name in placeholders(template)}


def test_the_supported_languages_are_the_files_present() -> None:
    files = {path.stem for path in LOCALES_DIR.glob("*.toml")}
    assert set(languages()) == files
    assert {"sv", "en", "ar"} <= files
    assert languages()[0] == DEFAULT_LANGUAGE


def test_the_shipped_catalogue_has_no_problems() -> None:
    assert CATALOGUE.problems() == []


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_every_text_exists_in_every_language_with_the_same_placeholders(language: str) -> None:
    locale = CATALOGUE.locales[language]
    assert set(locale.texts) == set(REFERENCE.texts), "keys differ from sv.toml"
    for key, template in locale.texts.items():
        assert template.strip(), key
        assert placeholders(template) == placeholders(REFERENCE.texts[key]), key


@pytest.mark.parametrize("language", CATALOGUE.languages)
def test_every_text_is_valid_telegram_html_in_every_language(language: str) -> None:
    for key, template in CATALOGUE.locales[language].texts.items():
        rendered = text(key, language, **sample_values(template))
        try:
            parse_html(rendered)  # raises as Telegram would: unknown tag, unclosed tag, bare &
        except ApiError as problem:
            raise AssertionError(f"{language}:{key}: {problem}") from None
        assert "{" not in rendered, f"{language}:{key} left a placeholder unfilled"


@pytest.mark.parametrize("language", CATALOGUE.languages)
def test_every_locale_file_has_its_metadata(language: str) -> None:
    locale = CATALOGUE.locales[language]
    assert locale.code == language
    assert locale.name.strip()
    assert locale.direction in ("ltr", "rtl")
    # The detector code is one lingua knows (it raises ValueError otherwise).
    assert IsoCode639_1.from_str(locale.detector).name.lower() == locale.detector
    assert len(locale.weekdays) == 7 and len(locale.months) == 12


@pytest.mark.parametrize("language", CATALOGUE.languages)
def test_every_language_names_every_supported_language(language: str) -> None:
    names = CATALOGUE.locales[language].names
    for code in CATALOGUE.languages:
        assert names.get(code, "").strip(), f"{language}.toml has no name for {code}"


def test_the_desk_sees_the_language_by_name_and_code() -> None:
    assert language_label("ar", "sv") == "arabiska (ar)"
    assert language_label("en", "sv") == "engelska (en)"


def test_arabic_is_right_to_left_and_swedish_and_english_are_not() -> None:
    assert CATALOGUE.locales["ar"].rtl
    assert not CATALOGUE.locales["sv"].rtl and not CATALOGUE.locales["en"].rtl


def test_swedish_and_english_texts_carry_no_direction_marks() -> None:
    for language in ("sv", "en"):
        for key, template in CATALOGUE.locales[language].texts.items():
            rendered = text(key, language, **sample_values(template))
            assert not set(rendered) & {RLM, LRI, FSI, PDI}, key


def test_every_arabic_line_starts_right_to_left() -> None:
    for key, template in CATALOGUE.locales["ar"].texts.items():
        rendered = text(key, "ar", **sample_values(template))
        for line in rendered.split("\n"):
            assert not line or line.startswith(RLM), (key, line)


def test_values_in_arabic_texts_are_isolated_and_escaped() -> None:
    rendered = text("case_line", "ar", reference="F-2026-0042", status="x", question="<b>hej</b>")
    assert f"{FSI}F-2026-0042{PDI}" in rendered
    assert f"{FSI}&lt;b&gt;hej&lt;/b&gt;{PDI}" in rendered
    # A coordinator's reply of several lines: each line isolated on its own (an isolate
    # never spans a paragraph).
    reply = text("member_reply", "ar", reference="F-2026-0042", text="Hej!\nVälkomna.")
    assert f"{FSI}Hej!{PDI}\n{RLM}{FSI}Välkomna.{PDI}" in reply


def test_commands_in_arabic_texts_stay_commands_with_the_slash_in_front() -> None:
    rendered = text("help", "ar")
    assert {"/mycases", "/language", "/start"} <= commands_telegram_sees(rendered)
    for command in ("mycases", "language", "start"):
        assert f"{LRI}/{command}{PDI}" in rendered


def test_arabic_dates_and_department_names() -> None:
    zone = ZoneInfo("Europe/Stockholm")
    due = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 17.00 in Stockholm
    assert format_due(due, zone, "sv") == "fredag 27 november kl. 17.00"
    assert format_due(due, zone, "en") == "Friday 27 November at 17:00"
    assert format_due(due, zone, "ar") == "الجمعة 27 نوفمبر الساعة 17:00"


def test_departments_keep_their_swedish_names_with_an_arabic_explanation(
    shipped_routing: Routing,
) -> None:
    for department in shipped_routing.table.departments:
        for language in CATALOGUE.languages:
            explained = CATALOGUE.locales[language].departments
            if explained:  # a language that explains the Swedish names explains them all
                assert explained.get(department.id, "").strip(), (language, department.id)
        arabic = department_name(department, "ar")
        assert department.name in arabic and arabic != department.name
    by_id = shipped_routing.table.department_by_id
    assert department_name(by_id["skola_fritid"], "sv").startswith("Skol- och fritids")
    assert department_name(by_id["skola_fritid"], "en").startswith("School and Leisure")


def test_every_article_is_in_a_supported_language(shipped_routing: Routing) -> None:
    for article in shipped_routing.knowledge.articles.values():
        assert article.meta.language in languages(), article.path


def test_an_arabic_article_renders_right_to_left() -> None:
    rendered = markdown_to_html("**عنوان**\n\n- LOK-stöd للأطفال", "ar")
    assert rendered.split("\n")[0] == f"{RLM}<b>عنوان</b>"
    assert rendered.split("\n")[2].startswith(f"{RLM}• ")
    assert RLM not in markdown_to_html("**Rubrik**", "sv")


# ---------------------------------------------------------------------------------------------
# A city adds a language by adding a file


def locales_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return directory


def finnish_from_english(directory: Path, change: dict[str, str] | None = None) -> Path:
    content = (directory / "en.toml").read_text(encoding="utf-8")
    content = content.replace('name = "English"', 'name = "Suomi"').replace(
        'detector = "en"', 'detector = "fi"'
    )
    content = content.replace("[names]", '[names]\nfi = "suomi"')
    for old, new in (change or {}).items():
        content = content.replace(old, new)
    path = directory / "fi.toml"
    path.write_text(content, encoding="utf-8")
    return path


def test_a_language_is_added_by_adding_a_file(tmp_path: Path) -> None:
    directory = locales_copy(tmp_path)
    finnish_from_english(directory)
    catalogue = load_catalogue(directory)
    assert "fi" in catalogue.languages
    assert catalogue.locale("fi").name == "Suomi"
    # Only its own file names Finnish so far: the check says which files must name it.
    problems = catalogue.problems()
    assert any("sv.toml: [names] has no name for 'fi'" in p for p in problems)
    assert not any("fi.toml" in p for p in problems)


def test_a_missing_text_is_reported_and_falls_back_to_swedish(tmp_path: Path) -> None:
    directory = locales_copy(tmp_path)
    finnish_from_english(directory, {'\nno_cases = "You have no cases yet."': ""})
    catalogue = load_catalogue(directory)
    assert any("fi.toml: text 'no_cases' is missing" in p for p in catalogue.problems())
    template, source = catalogue.template("no_cases", "fi")
    assert template == "Du har inga ärenden ännu." and source.code == "sv"


def test_a_placeholder_the_code_does_not_fill_is_refused(tmp_path: Path) -> None:
    directory = locales_copy(tmp_path)
    finnish_from_english(directory, {"You have no cases yet.": "No cases, {name}."})
    with pytest.raises(LocaleInvalid) as refused:
        load_catalogue(directory)
    assert "fi.toml: text 'no_cases' uses ['name']" in str(refused.value)


def test_a_dropped_placeholder_is_reported(tmp_path: Path) -> None:
    directory = locales_copy(tmp_path)
    finnish_from_english(
        directory, {"Thanks! I have added it to case <b>{reference}</b>.": "Thanks!"}
    )
    problems = load_catalogue(directory).problems()
    assert any("fi.toml: text 'added_to_case' has placeholders []" in p for p in problems)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({'direction = "ltr"': 'direction = "sideways"'}, "language.direction"),
        ({'detector = "fi"': 'detector = "finnish"'}, "language.detector"),
        ({"[calendar]": "[calendar]\nextra = 1"}, "calendar.extra"),
        ({'due = "{weekday}': 'due = "{year} {weekday}'}, "calendar.due may use only"),
        ({'button_yes = "Yes"': 'button_yes = "Yes'}, "not valid TOML"),
    ],
)
def test_a_broken_locale_file_is_refused_naming_the_file(
    tmp_path: Path, change: dict[str, str], expected: str
) -> None:
    directory = locales_copy(tmp_path)
    path = finnish_from_english(directory, change)
    with pytest.raises(LocaleInvalid) as refused:
        load_catalogue(directory)
    message = str(refused.value)
    assert str(path) in message and expected in message, message


def test_there_must_be_a_swedish_file(tmp_path: Path) -> None:
    directory = locales_copy(tmp_path)
    (directory / "sv.toml").unlink()
    with pytest.raises(LocaleInvalid, match=r"no sv\.toml"):
        load_catalogue(directory)


def test_the_most_asked_articles_have_arabic_and_easy_swedish_versions(
    shipped_routing: Routing,
) -> None:
    knowledge = shipped_routing.knowledge
    arabic = {
        a.meta.translation_of for a in knowledge.articles.values() if a.meta.language == "ar"
    }
    easy = {a.meta.translation_of for a in knowledge.articles.values() if a.meta.easy_read}
    assert len(arabic) >= 10 and arabic == easy
    for article_id in arabic:
        assert knowledge.articles[article_id].meta.language == DEFAULT_LANGUAGE
    for article in knowledge.articles.values():
        if article.meta.translation_of:
            # The convention: every version lists the facts the city must check.
            assert article.meta.verify, article.path
            original = knowledge.articles[article.meta.translation_of]
            assert article.meta.department == original.meta.department, article.path
        if article.meta.easy_read:
            assert article.meta.language == DEFAULT_LANGUAGE, article.path
            assert len(article.body) < len(knowledge.articles[article.meta.translation_of].body)


def test_easy_swedish_is_written_in_short_sentences(shipped_routing: Routing) -> None:
    """Lättläst: one idea per sentence, so no sentence (or line) over 12 words."""
    for article in shipped_routing.knowledge.articles.values():
        if not article.meta.easy_read:
            continue
        sentences = re.split(r"[.?!:\n]+", article.body.replace("**", ""))
        longest = max(len(re.findall(r"\w+", sentence)) for sentence in sentences)
        assert longest <= 12, (article.path, longest)
