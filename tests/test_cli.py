"""The `concierge` command line, as an admin uses it."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from bot.cli import main

JSON_KEYS = {"action", "department", "score", "candidates", "rule", "article", "explanation"}


def small_table() -> str:
    """Three departments, a few rules with keywords and examples, person phrases."""
    return """\
version: 1
thresholds:
  answer: 0.5
  answer_margin: 0.05
  clarify: 0.25
  max_candidates: 3
escalation:
  person_phrases:
    - prata med en människa
    - talk to a human
departments:
  - id: fritid
    name: Fritid Helsingborg
    contact: {phone: "042-10 00 00"}
  - id: kultur
    name: Kulturförvaltningen
    contact: {web: https://example.org/kultur}
  - id: fastighet
    name: Fastighetsförvaltningen
    contact: {phone: "042-10 00 01", example: true}
rules:
  - id: halltider
    department: fritid
    article: boka-hall
    keywords: [idrottshall, halltider, träningstider]
    examples:
      - Hur bokar vi träningstider i en idrottshall?
      - Vi behöver fler halltider för vårt innebandylag.
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
      - Vi vill hyra en lokal av kommunen för vår förening.
      - Dörren i lokalen vi hyr är trasig, vem fixar den?
"""


ARTICLE = """\
---
id: boka-hall
title: Boka idrottshall
department: fritid
tags: [halltider]
language: sv
---

Halltider bokas hos Fritid Helsingborg.
"""


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A valid table and its knowledge base in tmp_path; the router cache there too."""
    monkeypatch.setenv("CONCIERGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("RULES_PATH", raising=False)
    monkeypatch.delenv("KNOWLEDGE_PATH", raising=False)
    rules = tmp_path / "routing_rules.yaml"
    rules.write_text(small_table(), encoding="utf-8")
    knowledge = tmp_path / "articles"
    knowledge.mkdir()
    (knowledge / "boka-hall.md").write_text(ARTICLE, encoding="utf-8")
    return rules, knowledge


def line_of(text: str, needle: str) -> int:
    """1-based line number of the first line containing ``needle``."""
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin, catch_exceptions=False)


def json_lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------
# route


def test_route_json_prints_one_object_per_question(setup: tuple[Path, Path]) -> None:
    rules, knowledge = setup
    result = run(
        "route",
        "--json",
        "--rules",
        str(rules),
        "--knowledge",
        str(knowledge),
        "Hur bokar vi en idrottshall?",
        "Kan jag prata med en människa?",
    )
    assert result.exit_code == 0, result.output
    first, second = json_lines(result.stdout)
    for shown in (first, second):
        assert set(shown) == JSON_KEYS
    assert first["action"] == "answer"
    assert first["department"] == "fritid"
    assert first["rule"] == "halltider"
    assert first["article"] == "boka-hall"
    assert all(set(c) == {"department", "score"} for c in first["candidates"])  # type: ignore[union-attr]
    assert second["action"] == "escalate"


def test_route_reads_questions_from_stdin(setup: tuple[Path, Path]) -> None:
    rules, knowledge = setup
    result = run(
        "route",
        "--json",
        "--rules",
        str(rules),
        "--knowledge",
        str(knowledge),
        stdin="Hur bokar vi en idrottshall?\nVi söker kulturstöd\nVi vill hyra en lokal\n",
    )
    assert result.exit_code == 0, result.output
    shown = json_lines(result.stdout)
    assert [item["department"] for item in shown] == ["fritid", "kultur", "fastighet"]


def test_route_prints_a_readable_decision(setup: tuple[Path, Path]) -> None:
    rules, knowledge = setup
    result = run(
        "route", "--rules", str(rules), "--knowledge", str(knowledge), "Vi söker kulturstöd"
    )
    assert result.exit_code == 0, result.output
    assert "Vi söker kulturstöd" in result.stdout
    assert "answer → kultur" in result.stdout
    assert "why:" in result.stdout


def test_route_with_a_broken_table_exits_1_naming_the_line(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    _, knowledge = setup
    broken = tmp_path / "broken.yaml"
    broken.write_text(small_table().replace("  answer: 0.5\n", "  answer: 1.5\n"), "utf-8")
    result = run("route", "--rules", str(broken), "--knowledge", str(knowledge), "halltider")
    assert result.exit_code == 1
    assert f"{broken}:{line_of(small_table(), 'answer: 0.5')}:" in result.stderr


# ---------------------------------------------------------------------------------------------
# rules check / explain


def test_rules_check_accepts_a_valid_table(setup: tuple[Path, Path]) -> None:
    rules, knowledge = setup
    result = run("rules", "check", str(rules), "--knowledge", str(knowledge))
    assert result.exit_code == 0, result.output
    assert f"{rules}: OK" in result.stdout
    assert "3 departments, 3 rules" in result.stdout
    assert "1 articles" in result.stdout
    # contact details marked `example: true` are listed for verification
    assert "fastighet" in result.stdout


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("  clarify: 0.25\n", "  clarify: 0.25\n  colour: red\n", "colour: red"),
        ("    department: kultur\n", "    department: kulture\n", "department: kulture"),
        ("  max_candidates: 3\n", "  max_candidates: 5\n", "max_candidates: 5"),
        ("  - id: lokaler\n", "\t- id: lokaler\n", "\t- id: lokaler"),
    ],
    ids=["unknown-key", "missing-department", "max-candidates", "tab"],
)
def test_rules_check_refuses_a_broken_table_with_file_and_line(
    setup: tuple[Path, Path], old: str, new: str, needle: str
) -> None:
    rules, knowledge = setup
    text = small_table().replace(old, new)
    assert text != small_table()
    rules.write_text(text, encoding="utf-8")
    result = run("rules", "check", str(rules), "--knowledge", str(knowledge))
    assert result.exit_code == 1
    assert "The routing table cannot be used" in result.stderr
    assert f"{rules}:{line_of(text, needle)}:" in result.stderr


def test_rules_check_reports_a_missing_article(setup: tuple[Path, Path]) -> None:
    rules, knowledge = setup
    (knowledge / "boka-hall.md").unlink()
    result = run("rules", "check", str(rules), "--knowledge", str(knowledge))
    assert result.exit_code == 1
    assert f"{rules}:{line_of(small_table(), 'article: boka-hall')}:" in result.stderr
    assert "'boka-hall'" in result.stderr


def test_rules_check_on_a_missing_file(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    _, knowledge = setup
    result = run("rules", "check", str(tmp_path / "nowhere.yaml"), "--knowledge", str(knowledge))
    assert result.exit_code == 1
    assert "file not found" in result.stderr


def test_rules_explain_prints_the_candidates(setup: tuple[Path, Path]) -> None:
    rules, knowledge = setup
    result = run(
        "rules",
        "explain",
        "--rules",
        str(rules),
        "--knowledge",
        str(knowledge),
        "Hur bokar vi en idrottshall?",
    )
    assert result.exit_code == 0, result.output
    assert "Decision: answer → fritid" in result.stdout
    assert "Thresholds: answer ≥ 0.5" in result.stdout
    for department in ("fritid", "kultur", "fastighet"):
        assert f"\n{department}: score " in result.stdout
    assert "rule: halltider" in result.stdout


# ---------------------------------------------------------------------------------------------
# eval


def _questions(tmp_path: Path) -> Path:
    path = tmp_path / "questions.jsonl"
    lines = [
        {"text": "Hur bokar vi en idrottshall?", "expect": ["fritid"]},
        {"text": "Vi söker kulturstöd för en konsert", "expect": ["kultur"]},
        {"text": "Kan jag prata med en människa?", "expect": ["escalate"]},
    ]
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n")
    return path


def test_eval_fails_below_the_bar(setup: tuple[Path, Path], tmp_path: Path) -> None:
    rules, knowledge = setup
    result = run(
        "eval",
        str(_questions(tmp_path)),
        "--rules",
        str(rules),
        "--knowledge",
        str(knowledge),
        "--min-correct",
        "1.01",
    )
    assert result.exit_code == 1
    assert "FAILED: correct" in result.stdout
    assert "--min-correct" in result.stdout


def test_eval_passes_at_a_reachable_bar(setup: tuple[Path, Path], tmp_path: Path) -> None:
    rules, knowledge = setup
    result = run(
        "eval",
        str(_questions(tmp_path)),
        "--rules",
        str(rules),
        "--knowledge",
        str(knowledge),
        "--min-correct",
        "0.0",
        "--json",
    )
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["n"] == 3
    assert figures["failed"] == []


def test_eval_names_the_bad_line_of_a_question_file(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    rules, knowledge = setup
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "halltider", "expect": ["fritid"]}\n{"text": "x"}\n')
    result = run("eval", str(path), "--rules", str(rules), "--knowledge", str(knowledge))
    assert result.exit_code == 2
    assert f"{path}:2:" in result.stderr


# ---------------------------------------------------------------------------------------------
# help


def _commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            found.extend(_commands(sub, (*path, name)))
    return found


@pytest.mark.parametrize(
    ("path", "command"),
    [
        pytest.param(path, command, id=" ".join(path) or "concierge")
        for path, command in _commands(main)
    ],
)
def test_every_command_has_help(path: tuple[str, ...], command: click.Command) -> None:
    assert (command.help or "").strip(), f"{path} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert (param.help or "").strip(), f"{path} option {param.opts} has no help text"
    result = run(*path, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    assert command.help.strip().splitlines()[0] in result.stdout


def test_the_expected_commands_exist() -> None:
    names = {" ".join(path) for path, _ in _commands(main)}
    assert {"route", "rules", "rules check", "rules explain", "eval"} <= names


def test_run_refuses_to_start_without_a_token_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert "TELEGRAM_BOT_TOKEN: is not set" in result.stderr


def test_run_refuses_a_webhook_without_its_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:ABCDEFGHIJKLMNOP")
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.org/telegram")
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert "WEBHOOK_SECRET is required" in result.stderr


def test_associations_export_writes_csv(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'register.sqlite3'}"
    result = CliRunner().invoke(main, ["associations", "export", "--database", database])
    assert result.exit_code == 0
    assert result.output.splitlines()[0] == (
        "name,org_number,category,members_count,email,phone,listed,created_at,confirmed_at"
    )
