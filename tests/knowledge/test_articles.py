"""Knowledge-base articles: Markdown with front matter, refused with file:line and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowledge.articles import MAX_ARTICLE_CHARS, load_knowledge, parse_article
from knowledge.rules import RulesInvalid

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "knowledge" / "articles"


def article(
    article_id: str = "lok-stod",
    *,
    language: str = "sv",
    translation_of: str | None = None,
    body: str = "LOK-stöd söks två gånger per år hos Fritid Helsingborg.",
    extra: str = "",
) -> str:
    translation = f"translation_of: {translation_of}\n" if translation_of else ""
    return (
        "---\n"
        f"id: {article_id}\n"
        "title: LOK-stöd\n"
        "department: fritid\n"
        "tags: [lok, bidrag]\n"
        f"language: {language}\n"
        f"{translation}{extra}"
        "---\n"
        "\n"
        f"{body}\n"
    )


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not in the fixture"
    return hits[occurrence - 1]


def refusal(text: str, file: str = "kb/lok-stod.md") -> tuple[int | None, str]:
    """The single error for ``text``: its line and message; asserts the file is named."""
    with pytest.raises(RulesInvalid) as info:
        parse_article(text, file)
    messages = [str(error) for error in info.value.errors]
    assert len(messages) == 1, messages
    match = re.fullmatch(rf"{re.escape(file)}(?::(\d+))?: (.+)", messages[0], re.DOTALL)
    assert match, messages[0]
    return (int(match[1]) if match[1] else None), match[2]


def write_kb(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def kb_errors(directory: Path) -> list[str]:
    with pytest.raises(RulesInvalid) as info:
        load_knowledge(directory)
    return [str(error) for error in info.value.errors]


# ---------------------------------------------------------------------------------------------
# One article


def test_valid_article() -> None:
    parsed = parse_article(article(), "kb/lok-stod.md")
    assert parsed.id == "lok-stod"
    assert parsed.meta.title == "LOK-stöd"
    assert parsed.meta.department == "fritid"
    assert parsed.meta.tags == ("lok", "bidrag")
    assert parsed.meta.language == "sv"
    assert parsed.body == "LOK-stöd söks två gånger per år hos Fritid Helsingborg."


def test_windows_line_endings_are_fine() -> None:
    parsed = parse_article(article().replace("\n", "\r\n"), "kb/lok-stod.md")
    assert parsed.body.startswith("LOK-stöd söks")


def test_missing_front_matter() -> None:
    line, message = refusal("# LOK-stöd\n\nText utan front matter.\n")
    assert line == 1
    assert "must start with a '---' line" in message


def test_unclosed_front_matter() -> None:
    line, message = refusal("---\nid: lok-stod\ntitle: LOK-stöd\n\nText.\n")
    assert line == 1
    assert "front matter is not closed" in message
    assert "add a '---' line" in message


def test_unknown_key() -> None:
    text = article(extra="author: Kim\n")
    line, message = refusal(text)
    assert line == line_of(text, "author:")
    assert "unknown key 'author'" in message
    assert "remove it or check its spelling" in message


def test_missing_title() -> None:
    text = article().replace("title: LOK-stöd\n", "")
    line, message = refusal(text)
    assert line is not None
    assert "'title' is missing; add it" in message


def test_bad_language() -> None:
    text = article(language="Deutsch")
    line, message = refusal(text)
    assert line == line_of(text, "language: Deutsch")
    assert "'Deutsch' is not a language code" in message
    assert "'sv', 'en' or 'ar'" in message


def test_an_easy_read_version_needs_the_article_it_retells(tmp_path: Path) -> None:
    write_kb(
        tmp_path, {"lok-stod-lattlast.md": article("lok-stod-lattlast", extra="easy_read: true\n")}
    )
    errors = kb_errors(tmp_path)
    assert any("easy_read article needs translation_of" in error for error in errors), errors


def test_versions_in_other_languages_and_easy_read(tmp_path: Path) -> None:
    write_kb(
        tmp_path,
        {
            "lok-stod.md": article(),
            "lok-stod-en.md": article("lok-stod-en", language="en", translation_of="lok-stod"),
            "lok-stod-ar.md": article("lok-stod-ar", language="ar", translation_of="lok-stod"),
            "lok-stod-lattlast.md": article(
                "lok-stod-lattlast", translation_of="lok-stod", extra="easy_read: true\n"
            ),
            "bygglov.md": article("bygglov"),
            "bygglov-en.md": article("bygglov-en", language="en", translation_of="bygglov"),
        },
    )
    knowledge = load_knowledge(tmp_path)

    def version(article_id: str, language: str, *fallbacks: str) -> str | None:
        found = knowledge.get(article_id, language, fallbacks)
        return found.id if found else None

    assert version("lok-stod", "sv") == "lok-stod"  # never the easy-read one by itself
    assert version("lok-stod", "ar", "en") == "lok-stod-ar"
    assert version("bygglov", "ar", "en") == "bygglov-en"
    assert version("bygglov", "ar") == "bygglov"  # no fallback: the original
    assert version("bygglov", "en") == "bygglov-en"
    assert version("saknas", "ar", "en") is None
    easy = knowledge.easy_read_of("lok-stod")
    assert easy is not None and easy.id == "lok-stod-lattlast"
    assert knowledge.easy_read_of("bygglov") is None


def test_id_not_matching_the_file_name() -> None:
    text = article("lok-bidrag")
    line, message = refusal(text, "kb/lok-stod.md")
    assert line == line_of(text, "id: lok-bidrag")
    assert "'lok-bidrag' must match the file name 'lok-stod'" in message
    assert "rename one of them" in message


@pytest.mark.parametrize("body", ["", "   \n\n  "])
def test_empty_body(body: str) -> None:
    text = article(body=body)
    line, message = refusal(text)
    assert line == line_of(text, "---", occurrence=2) + 1
    assert "no text after the front matter; write it" in message


def test_too_long_body() -> None:
    text = article(body="x" * (MAX_ARTICLE_CHARS + 1))
    line, message = refusal(text)
    assert line is not None
    assert f"{MAX_ARTICLE_CHARS + 1} characters" in message
    assert f"shorten it to at most {MAX_ARTICLE_CHARS}" in message


def test_body_of_exactly_the_limit_is_accepted() -> None:
    assert len(parse_article(article(body="x" * MAX_ARTICLE_CHARS), "kb/lok-stod.md").body) == (
        MAX_ARTICLE_CHARS
    )


def test_broken_front_matter_yaml_points_at_the_file_line() -> None:
    # front matter starts on file line 2: a YAML error must be reported at the file's line
    text = article(extra="  department: x: y\n")
    line, message = refusal(text)
    assert "not valid YAML" in message
    assert line == line_of(text, "department: x: y"), message


def test_duplicate_front_matter_key_points_at_the_file_line() -> None:
    text = article(extra="title: LOK-stöd igen\n")
    line, message = refusal(text)
    assert "'title' appears twice" in message
    assert line == line_of(text, "title: LOK-stöd igen"), message


def test_article_saved_with_a_utf8_bom_is_read() -> None:
    # Windows editors often save "UTF-8 with BOM"; the article does start with '---'.
    parsed = parse_article("\ufeff" + article(), "kb/lok-stod.md")
    assert parsed.id == "lok-stod"


def test_impossible_date_in_front_matter_is_refused_not_crashed_on(tmp_path: Path) -> None:
    text = article().replace("tags: [lok, bidrag]", "tags: [2024-13-01]")
    write_kb(tmp_path, {"lok-stod.md": text})
    errors = kb_errors(tmp_path)
    assert errors and errors[0].startswith(str(tmp_path / "lok-stod.md"))


# ---------------------------------------------------------------------------------------------
# A folder of articles


def test_load_knowledge_reads_every_article(tmp_path: Path) -> None:
    write_kb(
        tmp_path,
        {
            "sv/lok-stod.md": article(),
            "en/lok-stod-en.md": article("lok-stod-en", language="en", translation_of="lok-stod"),
            "README.md": "# Not an article\n",
        },
    )
    knowledge = load_knowledge(tmp_path)
    assert knowledge.ids == {"lok-stod", "lok-stod-en"}


def test_missing_knowledge_folder(tmp_path: Path) -> None:
    errors = kb_errors(tmp_path / "nowhere")
    assert len(errors) == 1
    assert "the knowledge folder does not exist" in errors[0]


def test_duplicate_ids_across_two_files(tmp_path: Path) -> None:
    write_kb(tmp_path, {"a/lok-stod.md": article(), "b/lok-stod.md": article()})
    errors = kb_errors(tmp_path)
    assert len(errors) == 1
    second = tmp_path / "b" / "lok-stod.md"
    assert errors[0].startswith(f"{second}:")
    assert "article id 'lok-stod' is also used by" in errors[0]
    assert str(tmp_path / "a" / "lok-stod.md") in errors[0]
    assert "rename one" in errors[0]


def test_duplicate_id_error_points_at_the_id_line(tmp_path: Path) -> None:
    text = article().replace("id: lok-stod\ntitle: LOK-stöd\n", "title: LOK-stöd\nid: lok-stod\n")
    write_kb(tmp_path, {"a/lok-stod.md": text, "b/lok-stod.md": text})
    (error,) = kb_errors(tmp_path)
    assert error.startswith(f"{tmp_path / 'b' / 'lok-stod.md'}:{line_of(text, 'id: lok-stod')}:")


def test_translation_of_pointing_nowhere(tmp_path: Path) -> None:
    write_kb(
        tmp_path,
        {"lok-stod-en.md": article("lok-stod-en", language="en", translation_of="lok-stöd-typo")},
    )
    (error,) = kb_errors(tmp_path)
    assert error.startswith(str(tmp_path / "lok-stod-en.md"))
    assert "translation_of 'lok-stöd-typo' names no article" in error
    assert "fix the id" in error


def test_errors_of_several_files_are_reported_together(tmp_path: Path) -> None:
    write_kb(
        tmp_path,
        {
            "lok-stod.md": article(language="Deutsch"),
            "kulturstod.md": article("kulturstod", extra="author: Kim\n"),
            "tom.md": article("tom", body=""),
        },
    )
    errors = kb_errors(tmp_path)
    assert len(errors) == 3
    assert {Path(error.split(":")[0]).name for error in errors} == {
        "lok-stod.md",
        "kulturstod.md",
        "tom.md",
    }


def test_get_returns_the_translation_when_there_is_one(tmp_path: Path) -> None:
    write_kb(
        tmp_path,
        {
            "lok-stod.md": article(),
            "lok-stod-en.md": article(
                "lok-stod-en", language="en", translation_of="lok-stod", body="LOK grants."
            ),
            "kulturstod.md": article("kulturstod", body="Kulturstöd söks hos kultur."),
        },
    )
    knowledge = load_knowledge(tmp_path)
    assert knowledge.get("lok-stod", "en").body == "LOK grants."
    assert knowledge.get("lok-stod", "sv").body.startswith("LOK-stöd söks")
    assert knowledge.get("lok-stod").body.startswith("LOK-stöd söks")
    # no English version: the Swedish one
    assert knowledge.get("kulturstod", "en").body == "Kulturstöd söks hos kultur."
    assert knowledge.get("nothing", "en") is None


# ---------------------------------------------------------------------------------------------
# The shipped knowledge base


def test_shipped_knowledge_base() -> None:
    knowledge = load_knowledge(SHIPPED)
    swedish = [a for a in knowledge.articles.values() if a.meta.language == "sv"]
    english = [a for a in knowledge.articles.values() if a.meta.language == "en"]
    assert len(swedish) >= 30
    assert english, "no English translations shipped"
    for translation in english:
        original = knowledge.articles.get(translation.meta.translation_of or "")
        assert original is not None, f"{translation.path}: translation_of names no article"
        assert original.meta.language == "sv"
        assert knowledge.get(original.id, "en") == translation
        assert knowledge.get(original.id, "sv") == original
    translated = {translation.meta.translation_of for translation in english}
    for untranslated in (a for a in swedish if a.id not in translated):
        assert knowledge.get(untranslated.id, "en") == untranslated
