"""Random and mutated rules files through the loader (and, when valid, the router).

Whatever the file holds, loading it gives either a routing table or ``RulesInvalid`` whose every
message says where (the file and a line) and what to do — never another exception. The mutations
start from the shipped ``routing_rules.yaml``: lines deleted, doubled, swapped and re-indented,
values of the wrong type, unknown and duplicate keys, random bytes and invalid UTF-8, the file cut
anywhere, deep nesting, aliases and huge numbers.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from knowledge.articles import collect_knowledge
from knowledge.router import Router
from knowledge.rules import RoutingTable, RuleError, RulesInvalid, load_rules

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_TEXT = (ROOT / "routing_rules.yaml").read_text(encoding="utf-8")
SHIPPED_LINES = SHIPPED_TEXT.splitlines(keepends=True)
SHIPPED_DATA = yaml.safe_load(SHIPPED_TEXT)
KNOWN_ARTICLES = collect_knowledge(ROOT / "knowledge" / "articles")[0].ids
# Parsing and validating the whole shipped table takes tens of milliseconds.
EXAMPLES = settings().max_examples
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# What a message tells the admin to do (or what the value must be).
ADVICE = re.compile(
    r"\b(add|remove|use|check|fix|put|write|rename|give|keep|lower|raise|save|simplify|"
    r"correct|quote|must|should|delete|replace)\b",
    re.IGNORECASE,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*path, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*path, index)))
    return found


SHIPPED_PATHS = _paths(SHIPPED_DATA)

# ---------------------------------------------------------------------------------------------
# Strategies

huge_number = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.integers(10, 6000).map(lambda digits: "9" * digits),
    st.sampled_from(["1e99999", "-1e400", ".inf", "-.Inf", ".nan", "0x7fffffffffffffff", "1_000"]),
)
scalar_text = st.one_of(
    huge_number,
    st.sampled_from(["", "~", "null", "true", "no", "'", '"', "[", "{", "&a", "*a", "*nowhere"]),
    st.sampled_from(["!!python/object:os.system", "!!binary AAAA", "!!timestamp 2024-13-45"]),
    st.sampled_from(["!fritid 1", "!!int abc", "!!float x", "|", ">-", "? ", "<<: *a", "- -"]),
    st.text(max_size=30),
)
yaml_line = st.one_of(
    st.builds(
        "{}{}: {}\n".format,
        st.sampled_from(["", "  ", "    ", "\t", "      "]),
        st.sampled_from(
            ["version", "thresholds", "answer", "clarify", "departments", "rules", "id", "x"]
            + ["department", "keywords", "examples", "escalation", "categories", "name"]
        ),
        scalar_text,
    ),
    st.builds("{}- {}\n".format, st.sampled_from(["", "  ", "    ", "\t"]), scalar_text),
    st.sampled_from(["---\n", "...\n", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "#\n", "\n"]),
    st.text(max_size=40).map(lambda text: text + "\n"),
)


@st.composite
def edited_lines(draw: st.DrawFn) -> bytes:
    """The shipped file with lines deleted, doubled, swapped, re-indented or replaced."""
    lines = list(SHIPPED_LINES)
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        operation = draw(
            st.sampled_from(["delete", "double", "swap", "indent", "dedent", "replace", "insert"])
        )
        if operation == "delete":
            del lines[at]
        elif operation == "double":
            lines.insert(at, lines[at])
        elif operation == "swap" and at + 1 < len(lines):
            lines[at], lines[at + 1] = lines[at + 1], lines[at]
        elif operation == "indent":
            lines[at] = draw(st.sampled_from([" ", "  ", "\t", "    "])) + lines[at]
        elif operation == "dedent":
            lines[at] = lines[at].lstrip(" ")
        elif operation == "replace":
            lines[at] = draw(yaml_line)
        else:
            lines.insert(at, draw(yaml_line))
    return "".join(lines).encode("utf-8", "surrogatepass")


@st.composite
def cut_or_corrupted(draw: st.DrawFn) -> bytes:
    """The shipped file cut anywhere, or with bytes replaced (invalid UTF-8, NUL, a BOM …)."""
    content = bytearray(SHIPPED_TEXT.encode())
    if draw(st.booleans()):
        return bytes(content[: draw(st.integers(0, len(content)))])
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(content)))
        junk = draw(
            st.one_of(
                st.binary(min_size=1, max_size=8),
                st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\x00", b"\xef\xbb\xbf", b"\t"]),
            )
        )
        if draw(st.booleans()):
            content[at : at + len(junk)] = junk
        else:
            content[at:at] = junk
    return bytes(content)


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


yaml_value = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=30),
        st.sampled_from(["", " ", "\t", "F-2026-0042", "skola_fritid", "ingen_sådan"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
) | st.builds(_nested, st.integers(1, 400), st.just("x"))


def _replace(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return data


@st.composite
def mutated_data(draw: st.DrawFn) -> bytes:
    """The shipped table as data with keys removed, renamed or added and values replaced."""
    data = copy.deepcopy(SHIPPED_DATA)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(SHIPPED_PATHS))
        try:
            target = data
            for part in path:
                target = target[part]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed it
        operation = draw(st.sampled_from(["delete", "replace", "add_key", "rename"]))
        parent: Any = data
        for part in path[:-1]:
            parent = parent[part]
        if operation == "delete" and path:
            del parent[path[-1]]
        elif operation == "replace":
            data = _replace(data, path, draw(yaml_value))
        elif operation == "add_key" and isinstance(target, dict):
            target[draw(st.text(max_size=12))] = draw(yaml_value)
        elif operation == "rename" and path and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = parent.pop(path[-1])
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(
        data,
        Dumper=dumper,
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=draw(st.booleans()),
    )
    return text.encode("utf-8", "surrogatepass")


@st.composite
def hostile_additions(draw: st.DrawFn) -> bytes:
    """The shipped file with aliases, merges, repeated keys, deep nesting or huge numbers."""
    snippet = draw(
        st.one_of(
            st.builds(
                lambda depth: "x: " + "[" * depth + "]" * depth + "\n", st.integers(1, 6000)
            ),
            st.builds(
                lambda depth: "x: " + "{a: " * depth + "1" + "}" * depth + "\n",
                st.integers(1, 3000),
            ),
            st.just(
                'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                + "".join(
                    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
                    for i in range(8)
                )
            ),
            st.just("rules: &loop [*loop]\n"),
            st.just("extra: &m {version: 2}\nmerged:\n  <<: *m\n"),
            st.builds("version: {}\n".format, huge_number),
            st.builds(
                "thresholds: {{answer: {}, clarify: {}}}\n".format, huge_number, huge_number
            ),
            st.sampled_from(["version: 1\n", "rules: []\n", "departments:\n", "? [a, b]\n: c\n"]),
        )
    )
    lines = list(SHIPPED_LINES)
    at = draw(st.integers(0, len(lines)))
    lines.insert(at, snippet)
    return "".join(lines).encode()


rules_file = st.one_of(edited_lines(), cut_or_corrupted(), mutated_data(), hostile_additions())

# ---------------------------------------------------------------------------------------------
# What must hold


def assert_explained(error: RuleError, path: Path) -> None:
    """A message names the file and a line in it, and says what to change."""
    shown = str(error)
    assert shown.startswith(f"{path}"), shown
    assert error.line is not None and error.line >= 1, f"no line in: {shown}"
    assert ADVICE.search(error.message), f"no advice in: {shown}"


@pytest.fixture(scope="module")
def rules_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rules") / "routing_rules.yaml"


@PROPERTY_SETTINGS
@given(content=rules_file)
@example(content=b"")
@example(content=b"\xff\xfe\x00v\x00e\x00r")
@example(content=b"version: 1\x00\n")
@example(content=b"[" * 5000 + b"]" * 5000)
@example(content=b"version: " + b"9" * 5000 + b"\n")
@example(content=b"version: '" + b"9" * 5000 + b"'\n")
@example(content=SHIPPED_TEXT.encode())
def test_any_rules_file_loads_or_is_refused_with_located_advice(
    rules_path: Path, content: bytes
) -> None:
    rules_path.write_bytes(content)
    try:
        table = load_rules(rules_path, KNOWN_ARTICLES)
    except RulesInvalid as refused:
        assert refused.errors, "refused without a reason"
        for error in refused.errors:
            assert_explained(error, rules_path)
        event("refused")
        return
    assert isinstance(table, RoutingTable)
    event("valid")


# ---------------------------------------------------------------------------------------------
# Small random tables: when they validate, the router built from them routes anything

table_id = st.from_regex(r"[a-z][a-z0-9_\-]{0,8}", fullmatch=True)
phrase = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(
        ["Hur bokar vi en hall?", "halltider", "kulturstöd", "och i att", "🙂", "???", "123"]
    ),
    st.sampled_from(["F-2026-0001", "prata med en människa", "Malmö", " ", "", "a", "ﷺ"]),
)
phrases = st.lists(phrase, max_size=4)


@st.composite
def small_table(draw: st.DrawFn) -> dict[str, Any]:
    """A table of a few departments and rules, valid unless one thing is spoiled on purpose."""
    spoil = draw(st.sampled_from([None] * 6 + ["department", "blank", "order", "candidates"]))
    departments = draw(st.lists(table_id, min_size=1, max_size=4, unique=True))
    words = phrase.filter(str.strip)
    rules = []
    for rule_id in draw(st.lists(table_id, min_size=1, max_size=5, unique=True)):
        keywords = draw(st.lists(words, max_size=3))
        rules.append(
            {
                "id": rule_id,
                "department": draw(st.sampled_from(departments)),
                "keywords": keywords,
                "examples": draw(st.lists(words, min_size=0 if keywords else 1, max_size=4)),
            }
        )
    answer = draw(st.floats(0, 1))
    data: dict[str, Any] = {
        "version": 1,
        "thresholds": {
            "answer": answer,
            "clarify": answer * draw(st.floats(0, 1)),
            "answer_margin": draw(st.floats(0, 1)),
            "max_candidates": draw(st.integers(2, 4)),
        },
        "departments": [{"id": d, "name": draw(words)} for d in departments],
        "rules": rules,
    }
    if draw(st.booleans()):
        data["escalation"] = {
            key: draw(st.lists(words, max_size=3))
            for key in ("person_phrases", "examples", "out_of_scope", "outside_places")
        }
    if draw(st.booleans()):
        data["categories"] = {
            draw(st.sampled_from(["sports", "culture", "x"])): {
                "department": draw(st.sampled_from(departments))
            }
        }
    if spoil == "department":
        rules[-1]["department"] = "ingen_sadan"
    elif spoil == "blank":
        rules[0]["examples"] = [*rules[0]["examples"], draw(st.sampled_from(["", " ", "\t"]))]
    elif spoil == "order":
        data["thresholds"]["clarify"] = min(1.0, answer + 0.01 + draw(st.floats(0, 1)))
    elif spoil == "candidates":
        data["thresholds"]["max_candidates"] = draw(st.sampled_from([0, 1, 5, 99]))
    return data


@PROPERTY_SETTINGS
@given(data=small_table(), questions=st.lists(phrase, min_size=1, max_size=5))
def test_any_valid_table_builds_a_router_that_routes_anything(
    rules_path: Path, data: dict[str, Any], questions: list[str]
) -> None:
    rules_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    try:
        table = load_rules(rules_path)
    except RulesInvalid as refused:
        for error in refused.errors:
            assert_explained(error, rules_path)
        event("refused", re.sub(r"'.*?'|[\d.]+", "_", refused.errors[0].message)[:60])
        return
    event("valid")
    router = Router.build(table)
    departments = {department.id for department in table.departments}
    asked = questions + [text for rule in data["rules"] for text in rule["examples"]]
    for question in asked:
        for category in (None, *table.categories):
            decision = router.route(question, category)
            assert decision.action in {"answer", "clarify", "escalate"}
            assert math.isfinite(decision.score) and 0.0 <= decision.score <= 1.0
            assert all(c.department in departments for c in decision.candidates)
            if decision.action == "answer":
                assert decision.department in departments
            if decision.action == "clarify":
                assert 2 <= len(decision.candidates) <= table.thresholds.max_candidates
