"""The routing-table loader refuses broken tables with errors an admin can act on.

Each test writes a YAML file, loads it the way the bot does and reads the errors as the admin
sees them (``str(error)`` is what `concierge rules check` prints): ``file:line: what to change``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowledge.loading import load_table
from knowledge.rules import RulesInvalid, load_rules

REPO = Path(__file__).resolve().parents[2]
EVAL_README = Path("/work/shared/eval/README.md")


def valid_table() -> str:
    """A small table that loads: three departments, four rules, person phrases.

    Phrases are written both ways: flat lists (Swedish) and one list per language.
    """
    return """\
version: 1
thresholds:
  answer: 0.5
  answer_margin: 0.05
  clarify: 0.25
  max_candidates: 3
escalation:
  person_phrases:
    sv: [prata med en människa]
    en: [talk to a human]
    ar: [أريد التحدث مع شخص]
  examples:
    - Vi har väntat länge på svar om vår ansökan.
departments:
  - id: fritid
    name: Fritid Helsingborg
    contact:
      phone: "042-10 00 00"
      web: https://example.org/fritid
  - id: kultur
    name: Kulturförvaltningen
    contact:
      web: https://example.org/kultur
  - id: fastighet
    name: Fastighetsförvaltningen
    contact:
      phone: "042-10 00 01"
rules:
  - id: halltider
    department: fritid
    article: boka-hall
    keywords: [idrottshall, halltider, träningstider]
    examples:
      - Hur bokar vi träningstider i en idrottshall?
      - Vi behöver fler halltider för vårt innebandylag.
  - id: lok_stod
    department: fritid
    keywords: [lok-stöd, aktivitetsstöd]
    examples:
      - Hur söker vi LOK-stöd för våra ungdomsaktiviteter?
  - id: kulturstod
    department: kultur
    keywords: [kulturstöd, arrangemangsstöd]
    examples:
      - Vi vill söka bidrag för en konsert i parken.
      - Hur ansöker vår teaterförening om kulturstöd?
  - id: lokaler
    department: fastighet
    keywords: [hyra lokal, felanmälan]
    examples:
      sv:
        - Vi vill hyra en lokal av kommunen för vår förening.
        - Dörren i lokalen vi hyr är trasig, vem fixar den?
      en:
        - The door of the room we rent from the city is broken.
      ar:
        - نريد استئجار مقر من البلدية لجمعيتنا
"""


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"fixture edit is ambiguous: {old!r}"
    return text.replace(old, new)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the ``occurrence``-th line containing ``needle``."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= occurrence, f"{needle!r} not in the fixture"
    return hits[occurrence - 1]


def write(tmp_path: Path, content: str | bytes, name: str = "routing_rules.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def refusal(path: Path, known_articles: set[str] | None = None) -> list[str]:
    """The error lines an admin sees when ``path`` is refused."""
    with pytest.raises(RulesInvalid) as info:
        load_rules(path, known_articles)
    messages = [str(error) for error in info.value.errors]
    assert messages, "RulesInvalid without any error"
    assert str(info.value) == "\n".join(messages)
    return messages


def one_error(path: Path, known_articles: set[str] | None = None) -> tuple[int | None, str]:
    """The single error: its line and its message; asserts it names the file."""
    messages = refusal(path, known_articles)
    assert len(messages) == 1, messages
    match = re.fullmatch(rf"{re.escape(str(path))}(?::(\d+))?: (.+)", messages[0], re.DOTALL)
    assert match, f"error does not start with the file name: {messages[0]!r}"
    return (int(match[1]) if match[1] else None), match[2]


# ---------------------------------------------------------------------------------------------
# A valid table


def test_valid_table_loads(tmp_path: Path) -> None:
    table = load_rules(write(tmp_path, valid_table()))
    assert [department.id for department in table.departments] == ["fritid", "kultur", "fastighet"]
    assert [rule.id for rule in table.rules] == ["halltider", "lok_stod", "kulturstod", "lokaler"]
    assert table.thresholds.answer == 0.5
    assert table.escalation.person_phrases.sv == ("prata med en människa",)
    assert table.escalation.person_phrases.en == ("talk to a human",)
    assert table.escalation.person_phrases.ar == ("أريد التحدث مع شخص",)


def test_a_flat_list_is_swedish_and_a_mapping_has_one_list_per_language(tmp_path: Path) -> None:
    rules = {rule.id: rule for rule in load_rules(write(tmp_path, valid_table())).rules}
    flat = rules["halltider"]
    assert flat.examples.sv == (
        "Hur bokar vi träningstider i en idrottshall?",
        "Vi behöver fler halltider för vårt innebandylag.",
    )
    assert flat.examples.en == flat.examples.ar == ()
    per_language = rules["lokaler"].examples
    assert len(per_language.sv) == 2
    assert per_language.en == ("The door of the room we rent from the city is broken.",)
    assert per_language.ar == ("نريد استئجار مقر من البلدية لجمعيتنا",)
    assert len(per_language) == 4
    assert per_language.all() == (*per_language.sv, *per_language.en, *per_language.ar)
    assert list(per_language) == list(per_language.all())  # reads like the flat list it was


def test_a_rule_may_have_phrases_in_one_other_language_only(tmp_path: Path) -> None:
    text = valid_table() + (
        "  - id: nycklar\n    department: fastighet\n"
        "    keywords:\n      ar: [مفتاح, بطاقة الدخول]\n"
    )
    rule = load_rules(write(tmp_path, text)).rules[-1]
    assert rule.keywords.ar == ("مفتاح", "بطاقة الدخول")
    assert not rule.examples


def test_valid_table_loads_with_its_articles_known(tmp_path: Path) -> None:
    table = load_rules(write(tmp_path, valid_table()), known_articles={"boka-hall"})
    assert table.rules[0].article == "boka-hall"


def test_content_hash_is_stable_and_follows_the_examples(tmp_path: Path) -> None:
    path = write(tmp_path, valid_table())
    first = load_rules(path).content_hash()
    assert load_rules(path).content_hash() == first
    assert load_rules(write(tmp_path, valid_table(), "copy.yaml")).content_hash() == first

    changed = edit(valid_table(), "konsert i parken", "konsert på torget")
    assert load_rules(write(tmp_path, changed, "changed.yaml")).content_hash() != first


# ---------------------------------------------------------------------------------------------
# Unknown keys


@pytest.mark.parametrize(
    ("anchor", "extra"),
    [
        pytest.param("version: 1\n", "colour: red\n", id="top-level"),
        pytest.param("    name: Kulturförvaltningen\n", "    colour: red\n", id="department"),
        pytest.param("    department: kultur\n", "    colour: red\n", id="rule"),
        pytest.param("  clarify: 0.25\n", "  colour: 0.1\n", id="thresholds"),
    ],
)
def test_unknown_key_is_named_at_its_line(tmp_path: Path, anchor: str, extra: str) -> None:
    text = edit(valid_table(), anchor, anchor + extra)
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "colour:")
    assert "unknown key 'colour'" in message
    assert "remove it or check its spelling" in message


# ---------------------------------------------------------------------------------------------
# References


def test_rule_pointing_at_a_missing_department(tmp_path: Path) -> None:
    text = edit(valid_table(), "    department: kultur\n", "    department: kulture\n")
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "department: kulture")
    assert "'kulturstod'" in message
    assert "'kulture'" in message
    assert "not in 'departments'" in message
    # it says what the admin may use instead
    assert "fastighet, fritid, kultur" in message


def test_rule_pointing_at_a_missing_article(tmp_path: Path) -> None:
    text = valid_table()
    line, message = one_error(write(tmp_path, text), known_articles={"lok-stod"})
    assert line == line_of(text, "article: boka-hall")
    assert "'boka-hall'" in message
    assert "not in the knowledge base" in message
    assert "fix the id or remove the 'article' line" in message


def test_articles_are_not_checked_without_a_knowledge_base(tmp_path: Path) -> None:
    assert load_rules(write(tmp_path, valid_table()), known_articles=None).rules[0].article


# ---------------------------------------------------------------------------------------------
# Duplicates


def test_duplicate_department_id(tmp_path: Path) -> None:
    duplicate = "  - id: fritid\n    name: Fritid igen\n"
    text = edit(valid_table(), "rules:\n", duplicate + "rules:\n")
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "- id: fritid", occurrence=2)
    assert "department id 'fritid' is used twice" in message
    assert "give each department its own id" in message


def test_duplicate_rule_id(tmp_path: Path) -> None:
    text = edit(valid_table(), "  - id: lokaler\n", "  - id: halltider\n")
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "- id: halltider", occurrence=2)
    assert "rule id 'halltider' is used twice" in message
    assert "rename one of them" in message


def test_duplicate_key_in_one_mapping(tmp_path: Path) -> None:
    # YAML itself would silently keep the last 'keywords'; the loader must not.
    anchor = "    keywords: [hyra lokal, felanmälan]\n"
    text = edit(valid_table(), anchor, anchor + "    keywords: [nyckel]\n")
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "keywords: [nyckel]")
    assert "'keywords' appears twice" in message
    assert "keep one of them" in message


# ---------------------------------------------------------------------------------------------
# Empty rules and entries


def test_rule_without_keywords_or_examples(tmp_path: Path) -> None:
    text = valid_table() + "  - id: tom\n    department: kultur\n"
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "- id: tom")
    assert "rule 'tom' has neither keywords nor examples" in message
    assert "add at least one of them" in message


@pytest.mark.parametrize("blank", ['""', '"   "'])
def test_empty_keyword_entry(tmp_path: Path, blank: str) -> None:
    text = edit(
        valid_table(),
        "keywords: [kulturstöd, arrangemangsstöd]",
        f"keywords: [kulturstöd, {blank}, arrangemangsstöd]",
    )
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "keywords: [kulturstöd,")
    assert "keywords" in message
    assert "an entry is empty; remove it or write the words" in message


def test_empty_keyword_entry_in_a_block_list(tmp_path: Path) -> None:
    text = edit(
        valid_table(),
        "    keywords: [kulturstöd, arrangemangsstöd]\n",
        "    keywords:\n      - kulturstöd\n      - ''\n",
    )
    line, message = one_error(write(tmp_path, text))
    # the entry itself or the 'keywords:' key that holds it
    assert line in {line_of(text, "- ''"), line_of(text, "keywords:", occurrence=3)}
    assert "an entry is empty" in message


# ---------------------------------------------------------------------------------------------
# Phrases per language


def test_unknown_language_is_named_at_its_line(tmp_path: Path) -> None:
    text = edit(
        valid_table(),
        "      en:\n        - The door",
        "      fr:\n        - La porte du local est cassée.\n      en:\n        - The door",
    )
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "fr:")
    assert "rules.3.examples.fr" in message
    assert "'fr' is not a language of the routing table" in message
    assert "use sv, en or ar" in message


def test_empty_entry_in_a_language_list(tmp_path: Path) -> None:
    text = edit(valid_table(), "    en: [talk to a human]\n", '    en: [talk to a human, ""]\n')
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "en: [talk to a human,")
    assert "escalation.person_phrases.en" in message
    assert "an entry is empty; remove it or write the words" in message


def test_language_list_that_is_text(tmp_path: Path) -> None:
    text = edit(
        valid_table(),
        "    ar: [أريد التحدث مع شخص]\n",
        "    ar: أريد التحدث مع شخص\n",
    )
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "ar: أريد")
    assert "escalation.person_phrases.ar" in message
    assert "must be a list" in message


def test_language_mapping_without_any_phrase_is_an_empty_rule(tmp_path: Path) -> None:
    text = valid_table() + "  - id: tom\n    department: kultur\n    examples: {sv: [], en: []}\n"
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "- id: tom")
    assert "rule 'tom' has neither keywords nor examples" in message


def test_phrases_per_language_change_the_content_hash(tmp_path: Path) -> None:
    first = load_rules(write(tmp_path, valid_table())).content_hash()
    # The same phrases, one of them filed under another language.
    moved = edit(
        valid_table(),
        "    sv: [prata med en människa]\n    en: [talk to a human]\n",
        "    sv: [prata med en människa, talk to a human]\n",
    )
    assert load_rules(write(tmp_path, moved, "moved.yaml")).content_hash() != first


# ---------------------------------------------------------------------------------------------
# Thresholds


def test_thresholds_out_of_order(tmp_path: Path) -> None:
    text = edit(valid_table(), "  clarify: 0.25\n", "  clarify: 0.6\n")
    line, message = one_error(write(tmp_path, text))
    assert line in {line_of(text, "thresholds:"), line_of(text, "clarify: 0.6")}
    assert "clarify (0.6) must not be above answer (0.5)" in message
    assert "lower clarify or raise answer" in message


def test_threshold_above_one(tmp_path: Path) -> None:
    text = edit(valid_table(), "  answer: 0.5\n", "  answer: 1.5\n")
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "answer: 1.5")
    assert "thresholds.answer" in message
    assert "less than or equal to 1" in message


def test_too_many_candidates(tmp_path: Path) -> None:
    text = edit(valid_table(), "  max_candidates: 3\n", "  max_candidates: 5\n")
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "max_candidates: 5")
    assert "thresholds.max_candidates" in message
    assert "less than or equal to 4" in message


# ---------------------------------------------------------------------------------------------
# Wrong types


def test_answer_threshold_that_is_a_word(tmp_path: Path) -> None:
    text = edit(valid_table(), "  answer: 0.5\n", '  answer: "high"\n')
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, 'answer: "high"')
    assert "thresholds.answer" in message
    assert "number" in message


def test_examples_that_are_a_number_instead_of_a_list(tmp_path: Path) -> None:
    text = edit(
        valid_table(),
        "    examples:\n      - Hur söker vi LOK-stöd för våra ungdomsaktiviteter?\n",
        "    examples: 5\n",
    )
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "examples: 5")
    assert "examples" in message
    # The admin writes YAML: the fix is "make it a list", not Python's "tuple".
    assert "list" in message, message
    assert "sv:, en:, ar:" in message  # and that it may be one list per language


# ---------------------------------------------------------------------------------------------
# Broken YAML


def test_bad_indentation(tmp_path: Path) -> None:
    text = edit(valid_table(), "  clarify: 0.25\n", " clarify: 0.25\n")
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, " clarify: 0.25")
    assert "not valid YAML" in message
    assert "the indentation" in message


def test_tab_in_indentation(tmp_path: Path) -> None:
    text = edit(valid_table(), "  clarify: 0.25\n", "\tclarify: 0.25\n")
    line, message = one_error(write(tmp_path, text))
    assert line == line_of(text, "\tclarify")
    assert "not valid YAML" in message


def test_unclosed_quote_points_at_the_quote(tmp_path: Path) -> None:
    text = edit(valid_table(), '      phone: "042-10 00 01"\n', '      phone: "042-10 00 01\n')
    line, message = one_error(write(tmp_path, text))
    assert "not valid YAML" in message
    # The admin must be sent to the line that opens the quote, not to the end of the file.
    assert line == line_of(text, 'phone: "042-10 00 01'), message


def test_empty_file(tmp_path: Path) -> None:
    line, message = one_error(write(tmp_path, ""))
    assert "the file must be a mapping with 'version'" in message
    assert "'thresholds', 'departments' and 'rules'" in message
    assert line in {None, 1}


def test_file_that_is_just_a_list(tmp_path: Path) -> None:
    line, message = one_error(write(tmp_path, "- fritid\n- kultur\n"))
    assert line == 1
    assert "must be a mapping" in message


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(bytes(range(256)) * 4, id="all-bytes"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8\xff", id="png-header"),
        pytest.param(b"\xff\xfe\x00\x00version: 1", id="bad-utf8"),
        pytest.param(b"version: 1\x00\x01\x02\n", id="utf8-control-characters"),
    ],
)
def test_binary_garbage_is_refused_not_crashed_on(tmp_path: Path, garbage: bytes) -> None:
    path = write(tmp_path, garbage)
    messages = refusal(path)
    assert all(message.startswith(str(path)) for message in messages)


def test_utf8_garbage_message_says_what_to_do(tmp_path: Path) -> None:
    _, message = one_error(write(tmp_path, b"\xff\xfe\x81 version: 1"))
    assert "not UTF-8" in message
    assert "save it as UTF-8" in message


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("version: 1\nthresholds: {answer: 2024-13-01}\n", id="impossible-date"),
        pytest.param("version: !fritid 1\n", id="unknown-tag"),
        pytest.param("version: !!int abc\n", id="bad-explicit-int"),
        pytest.param("version: 1\nrules: &loop [*loop]\n", id="recursive-alias"),
        pytest.param("[" * 5000 + "]" * 5000, id="deep-nesting"),
    ],
)
def test_hostile_yaml_is_refused_with_rules_invalid(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content)
    messages = refusal(path)  # any other exception fails the test with its traceback
    assert all(message.startswith(str(path)) for message in messages)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    line, message = one_error(path)
    assert line is None
    assert "file not found; check the path" in message


# ---------------------------------------------------------------------------------------------
# Several errors at once


def test_several_schema_errors_are_all_reported(tmp_path: Path) -> None:
    text = valid_table()
    name = "    name: Kulturförvaltningen\n"
    text = edit(text, name, name + "    colour: x\n")
    text = edit(text, "  answer: 0.5\n", "  answer: 1.5\n")
    text += "  - id: tom\n    department: kultur\n"
    messages = refusal(write(tmp_path, text))
    path = str(tmp_path / "routing_rules.yaml")
    assert len(messages) == 3, messages
    lines = {line_of(text, "colour: x"), line_of(text, "answer: 1.5"), line_of(text, "- id: tom")}
    assert {int(message.split(":")[1]) for message in messages} == lines
    assert all(message.startswith(path + ":") for message in messages)


def test_several_reference_errors_are_all_reported(tmp_path: Path) -> None:
    text = edit(valid_table(), "  - id: lokaler\n", "  - id: halltider\n")
    text = edit(text, "    department: kultur\n", "    department: kulture\n")
    messages = refusal(write(tmp_path, text), known_articles=set())
    joined = "\n".join(messages)
    assert len(messages) == 3, messages
    assert "'kulture'" in joined
    assert "rule id 'halltider' is used twice" in joined
    assert "'boka-hall'" in joined


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            ("  max_candidates: 3\n", "  max_candidates: 9\n"),
            ("    department: kultur\n", "    department: kulture\n"),
            id="schema-and-reference",
        ),
        pytest.param(
            (
                "    keywords: [hyra lokal, felanmälan]\n",
                "    keywords: [hyra lokal, felanmälan]\n    keywords: [nyckel]\n",
            ),
            ("    name: Kulturförvaltningen\n", "    name: Kulturförvaltningen\n    colour: x\n"),
            id="duplicate-key-and-unknown-key",
        ),
    ],
)
def test_errors_of_different_kinds_are_reported_together(
    tmp_path: Path, first: tuple[str, str], second: tuple[str, str]
) -> None:
    """One `rules check` must list every problem, not one kind per round of fixing."""
    text = edit(edit(valid_table(), *first), *second)
    messages = refusal(write(tmp_path, text))
    assert len(messages) == 2, messages


# ---------------------------------------------------------------------------------------------
# The shipped table


def _shipped_department_ids() -> list[str]:
    text = EVAL_README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([a-z_]+) \|", text, re.MULTILINE)
    return [row for row in rows if row != "id"]  # the header row


def test_eval_readme_lists_the_expected_departments() -> None:
    if not EVAL_README.is_file():
        pytest.skip("the shared evaluation README is not present")
    assert set(_shipped_department_ids()) == {
        "skola_fritid",
        "kultur",
        "social",
        "vard_omsorg",
        "arbetsmarknad",
        "fastighet",
        "miljo",
        "stadsbyggnad",
        "stadsledning",
        "kontaktcenter",
        "polisen",
        "skatteverket",
    }


def test_shipped_table_validates_with_the_shipped_knowledge_base() -> None:
    table, knowledge = load_table(REPO / "routing_rules.yaml", REPO / "knowledge" / "articles")
    ids = {department.id for department in table.departments}
    assert {
        "skola_fritid",
        "kultur",
        "social",
        "vard_omsorg",
        "arbetsmarknad",
        "fastighet",
        "miljo",
        "stadsbyggnad",
        "stadsledning",
        "kontaktcenter",
        "polisen",
        "skatteverket",
    } <= ids
    if EVAL_README.is_file():
        assert set(_shipped_department_ids()) <= ids
    for rule in table.rules:
        if rule.article is not None:
            assert knowledge.get(rule.article) is not None, rule.id


def test_every_shipped_department_can_be_reached() -> None:
    table = load_rules(REPO / "routing_rules.yaml")
    unreachable = [d.id for d in table.departments if not (d.contact.phone or d.contact.web)]
    assert unreachable == []
