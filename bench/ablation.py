"""What each step of the router adds: the figures with the steps switched on one at a time.

    python bench/ablation.py [--rules routing_rules.yaml] [--clinc]

Rows are cumulative. Every row uses the thresholds of the routing table, so the first rows
(tuned for nothing) mostly show how far plain matching is from usable. With ``--clinc`` each row
also gives the in-scope accuracy on CLINC150's test split (top department, no threshold).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from knowledge.evaluation import evaluate, load_questions
from knowledge.loading import load_table
from knowledge.router import Router, RouterOptions
from knowledge.rules import RoutingTable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from clinc150 import DEFAULT_DATA, department_id, table_from_train  # noqa: E402

QUESTION_SETS = {
    "dev": ROOT.parent / "shared" / "eval" / "dev.jsonl",
    "holdout": ROOT / "tests" / "data" / "holdout.jsonl",
    "dev_en": ROOT / "tests" / "data" / "dev_en.jsonl",
    "dev_ar": ROOT / "tests" / "data" / "dev_ar.jsonl",
}
_NOTHING = RouterOptions(
    stemming=False,
    compounds=False,
    repair=False,
    char_ngrams=False,
    learned=False,
    keyword_bonus=0.0,
    coverage_power=0.0,
)
STEPS: list[tuple[str, dict[str, object]]] = [
    ("nearest example, folded words", {}),
    ("+ stemming (sv + en; ar: Snowball + light)", {"stemming": True}),
    ("+ compound splitting", {"compounds": True}),
    ("+ typo repair (rapidfuzz)", {"repair": True}),
    ("+ character n-grams", {"char_ngrams": True}),
    ("+ learned weighting", {"learned": True}),
    ("+ keyword bonus", {"keyword_bonus": RouterOptions().keyword_bonus}),
    ("+ known-word coverage (= shipped)", {"coverage_power": RouterOptions().coverage_power}),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=ROOT / "routing_rules.yaml")
    parser.add_argument("--clinc", action="store_true", help="Also CLINC150 test accuracy.")
    args = parser.parse_args()
    table, _ = load_table(args.rules, None)
    questions = {
        name: load_questions(path) for name, path in QUESTION_SETS.items() if path.is_file()
    }
    clinc_table: RoutingTable | None = None
    clinc_test: list[list[str]] = []
    if args.clinc and DEFAULT_DATA.is_file():
        data = json.loads(DEFAULT_DATA.read_text(encoding="utf-8"))
        clinc_table = RoutingTable.model_validate(table_from_train(data["train"]))
        clinc_test = data["test"]

    header = (
        "| step | "
        + " | ".join(
            f"{name}: correct / helped / precision / oos recall / wrong" for name in questions
        )
        + (" | CLINC150 in-scope |" if clinc_table else " |")
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    options = _NOTHING
    for label, change in STEPS:
        options = replace(options, **change)  # type: ignore[arg-type]
        router = Router.build(table, options)
        cells = []
        for items in questions.values():
            figures = evaluate(items, router.route).as_dict()
            cells.append(
                " / ".join(
                    f"{figures[key]:.3f}"
                    for key in (
                        "correct",
                        "helped",
                        "answer_precision",
                        "oos_recall",
                        "wrong_answers",
                    )
                )
            )
        row = f"| {label} | " + " | ".join(cells) + " |"
        if clinc_table is not None:
            clinc_router = Router.build(clinc_table, options)
            hits = 0
            for text, intent in clinc_test:
                ranked = clinc_router.rank(text)
                hits += bool(ranked) and ranked[0].department == department_id(intent)
            row += f" {100 * hits / len(clinc_test):.1f}% |"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
