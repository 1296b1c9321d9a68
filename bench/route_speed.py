"""Router speed: index build time, route latency, throughput and peak memory.

Two routing tables are measured, each in a fresh subprocess so that the peak RSS of one does not
include the other:

* ``shipped`` — the repository's ``routing_rules.yaml``, loaded and validated the way
  ``knowledge.loading.load_routing`` does it (``load_table``, then ``Router.build``); queried with
  the texts of ``../shared/eval/dev.jsonl``, ``tests/data/holdout.jsonl`` and the English and
  Arabic dev sets ``tests/data/dev_en.jsonl``, ``tests/data/dev_ar.jsonl``, repeated to at least
  2,000 calls;
* ``clinc`` — CLINC150's train split as a table (150 departments, one rule of 100 examples each,
  no keywords, no escalation); queried with its ``test`` + ``oos_test`` texts (5,500 calls).

Build time is measured cold (``cache_dir=None``, trains the weights) and warm (second build with
a cache folder, which loads the trained weights). Every query text is routed once as warm-up
before the timed passes.

    python bench/route_speed.py [--only {shipped,clinc}] [--repeat N] [--clinc PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RULES_PATH = ROOT / "routing_rules.yaml"
QUERY_FILES = (
    ROOT.parent / "shared" / "eval" / "dev.jsonl",
    ROOT / "tests" / "data" / "holdout.jsonl",
    ROOT / "tests" / "data" / "dev_en.jsonl",
    ROOT / "tests" / "data" / "dev_ar.jsonl",
)
DEFAULT_CLINC = ROOT.parent / "shared" / "benchmarks" / "clinc150" / "data_full.json"
MIN_SHIPPED_CALLS = 2000
TABLES = ("shipped", "clinc")
RESULT_PREFIX = "ROUTE_SPEED_RESULT "
GOALS = "Goals: p99 ≤ 1 ms (shipped), ≤ 5 ms (CLINC150); build ≤ 3 s; RSS ≤ 150 MB"


# -- tables and queries ----------------------------------------------------------------------


def clinc_department_id(intent: str) -> str:
    return re.sub(r"[^a-z0-9_\-]", "_", intent)


def clinc_table_data(train: list[list[str]]) -> dict[str, Any]:
    """CLINC150's train split as routing-table data: one department and one rule per intent."""
    by_intent: dict[str, list[str]] = {}
    for text, intent in train:
        by_intent.setdefault(intent, []).append(text)
    return {
        "version": 1,
        "thresholds": {"answer": 0.5, "answer_margin": 0.0, "clarify": 0.3, "max_candidates": 3},
        "departments": [
            {"id": clinc_department_id(intent), "name": intent} for intent in by_intent
        ],
        "rules": [
            {
                "id": clinc_department_id(intent),
                "department": clinc_department_id(intent),
                "examples": texts,
            }
            for intent, texts in by_intent.items()
        ],
    }


def shipped_table() -> tuple[Any, list[str], list[str]]:
    """The shipped table, its query texts and notes."""
    from knowledge.loading import default_knowledge_path, load_table
    from knowledge.rules import RulesInvalid

    notes: list[str] = []
    try:
        table, _ = load_table(RULES_PATH, default_knowledge_path())
    except RulesInvalid as exc:
        # The router does not use the articles; a knowledge base still being written must not
        # stop the measurement. A table that is itself invalid still fails below.
        table, _ = load_table(RULES_PATH, None)
        notes.append(
            f"knowledge base check failed ({len(exc.errors)} errors, e.g. "
            f"{exc.errors[0].message[:80]!r}); table validated without the article check"
        )
    texts: list[str] = []
    for path in QUERY_FILES:
        if not path.is_file():
            notes.append(f"query file {path} not found; skipped")
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["text"])
    return table, texts, notes


def clinc_table(path: Path) -> tuple[Any, list[str], list[str]]:
    from knowledge.rules import RoutingTable

    data = json.loads(path.read_text(encoding="utf-8"))
    table = RoutingTable.model_validate(clinc_table_data(data["train"]))
    texts = [text for text, _ in data["test"]] + [text for text, _ in data["oos_test"]]
    return table, texts, []


# -- measuring (child process) ---------------------------------------------------------------


def measure(which: str, clinc_path: Path, repeat: int | None) -> dict[str, Any]:
    import numpy as np

    from knowledge.router import Router

    table, texts, notes = shipped_table() if which == "shipped" else clinc_table(clinc_path)
    if not texts:
        raise SystemExit(f"{which}: no query texts")

    started = time.perf_counter_ns()
    router = Router.build(table, cache_dir=None)
    build_cold = (time.perf_counter_ns() - started) / 1e9

    with tempfile.TemporaryDirectory(prefix="route-speed-") as cache:
        Router.build(table, cache_dir=Path(cache))  # trains and fills the cache
        started = time.perf_counter_ns()
        router = Router.build(table, cache_dir=Path(cache))
        build_warm = (time.perf_counter_ns() - started) / 1e9

    for text in texts:  # warm-up pass
        router.route(text)

    if repeat is None:
        repeat = math.ceil(MIN_SHIPPED_CALLS / len(texts)) if which == "shipped" else 1
    latencies = np.empty(repeat * len(texts), dtype=np.int64)
    clock = time.perf_counter_ns
    route = router.route
    index = 0
    started = clock()
    for _ in range(repeat):
        for text in texts:
            begin = clock()
            route(text)
            latencies[index] = clock() - begin
            index += 1
    wall = (clock() - started) / 1e9
    ms = latencies / 1e6

    return {
        "table": which,
        "examples": sum(len(rule.examples) for rule in table.rules),
        "keywords": sum(len(rule.keywords) for rule in table.rules),
        "departments": len(table.departments),
        "queries": len(texts),
        "calls": int(latencies.size),
        "build_cold_s": build_cold,
        "build_warm_s": build_warm,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "questions_per_s": latencies.size / wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "notes": notes,
    }


# -- orchestration (parent process) ----------------------------------------------------------


def run_child(which: str, clinc_path: Path, repeat: int | None) -> dict[str, Any] | None:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--only",
        which,
        "--child",
        "--clinc",
        str(clinc_path),
    ]
    if repeat is not None:
        command += ["--repeat", str(repeat)]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    print(
        f"Note: the {which} measurement failed (exit code {completed.returncode}); "
        "see its error output above."
    )
    return None


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| table | examples | build cold (s) | build warm (s) | p50 (ms) | p99 (ms) | max (ms) "
        "| questions/s | peak RSS (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    names = {"shipped": "shipped (routing_rules.yaml)", "clinc": "CLINC150 (train)"}
    for row in rows:
        print(
            f"| {names[row['table']]} | {row['examples']:,} | {row['build_cold_s']:.2f} "
            f"| {row['build_warm_s']:.2f} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} "
            f"| {row['max_ms']:.2f} | {row['questions_per_s']:,.0f} | {row['peak_rss_mb']:.0f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=TABLES, help="Measure one table only.")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        metavar="N",
        help="Timed passes over the query set (default: enough for 2,000 calls "
        "on the shipped table, 1 pass of 5,500 on CLINC150).",
    )
    parser.add_argument(
        "--clinc",
        type=Path,
        default=DEFAULT_CLINC,
        metavar="PATH",
        help="CLINC150 data_full.json (default: %(default)s).",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    clinc_path = args.clinc.resolve()

    if args.child:
        result = measure(args.only, clinc_path, args.repeat)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0

    rows: list[dict[str, Any]] = []
    for which in (args.only,) if args.only else TABLES:
        if which == "shipped" and not RULES_PATH.is_file():
            print(f"Note: {RULES_PATH} not found; the shipped table is skipped.")
            continue
        if which == "clinc" and not clinc_path.is_file():
            print(f"Note: CLINC150 data not found at {clinc_path}; the CLINC150 table is skipped.")
            continue
        row = run_child(which, clinc_path, args.repeat)
        if row is not None:
            rows.append(row)
    if not rows:
        return 1
    print()
    print_table(rows)
    print()
    print(GOALS)
    print()
    for row in rows:
        print(
            f"- {row['table']}: {row['departments']} departments, {row['keywords']:,} keywords; "
            f"{row['queries']:,} query texts × {row['calls'] // row['queries']} timed "
            f"passes = {row['calls']:,} calls after 1 warm-up pass; peak RSS includes the cold "
            "build (training)."
        )
        for note in row["notes"]:
            print(f"  - {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
