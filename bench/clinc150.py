"""CLINC150: the router on a public intent benchmark with out-of-scope queries.

Builds a routing table from the `train` split alone (150 departments, 100 examples each), chooses
the escalation threshold on `val` + `oos_val` only, then routes `test` (4,500) and `oos_test`
(1,000) and prints in-scope accuracy and out-of-scope recall beside the paper's Table 2.

    python bench/clinc150.py [--data PATH] [--write-rules PATH] [--target-oos 0.55]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from knowledge.router import Router, RouterOptions
from knowledge.rules import RoutingTable

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "benchmarks" / "clinc150" / "data_full.json"
PAPER = [
    ("BERT (oos-threshold)", 96.2, 52.3),
    ("MLP/USE (oos-threshold)", 93.4, 49.1),
    ("Rasa (oos-threshold)", 90.9, 31.2),
    ("SVM bag of words (oos-threshold)", 88.2, 18.0),
    ("FastText (oos-threshold)", 88.6, 28.3),
]


def department_id(intent: str) -> str:
    return re.sub(r"[^a-z0-9_\-]", "_", intent.lower())


def table_from_train(train: list[list[str]], clarify: float = 0.3) -> dict[str, Any]:
    """The routing table (as YAML-ready data) of the train split: one department per intent."""
    by_intent: dict[str, list[str]] = {}
    for text, intent in train:
        by_intent.setdefault(intent, []).append(text)
    return {
        "version": 1,
        "thresholds": {
            "answer": clarify,
            "answer_margin": 0.0,
            "clarify": clarify,
            "max_candidates": 3,
        },
        "departments": [
            {"id": department_id(intent), "name": intent.replace("_", " ")}
            for intent in sorted(by_intent)
        ],
        "rules": [
            {"id": department_id(intent), "department": department_id(intent), "examples": texts}
            for intent, texts in sorted(by_intent.items())
        ],
    }


def top_scores(router: Router, texts: list[str]) -> tuple[list[str | None], np.ndarray]:
    tops: list[str | None] = []
    scores = np.zeros(len(texts))
    for index, text in enumerate(texts):
        ranked = router.rank(text)
        tops.append(ranked[0].department if ranked else None)
        scores[index] = ranked[0].score if ranked else 0.0
    return tops, scores


def figures(
    tops: list[str | None], scores: np.ndarray, gold: list[str], oos_scores: np.ndarray, th: float
) -> tuple[float, float]:
    accuracy = float(
        np.mean([t == g and s >= th for t, g, s in zip(tops, gold, scores, strict=True)])
    )
    recall = float(np.mean(oos_scores < th))
    return accuracy, recall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--write-rules", type=Path, help="Also write the table as YAML here.")
    parser.add_argument(
        "--target-oos",
        type=float,
        default=0.55,
        help="Out-of-scope recall the threshold must reach on oos_val.",
    )
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"CLINC150 data not found at {args.data}", file=sys.stderr)
        return 2
    data = json.loads(args.data.read_text(encoding="utf-8"))
    started = time.perf_counter()
    table_data = table_from_train(data["train"])
    table = RoutingTable.model_validate(table_data)
    router = Router.build(table, RouterOptions())
    build_seconds = time.perf_counter() - started

    def gold_of(split: str) -> tuple[list[str], list[str]]:
        return [t for t, _ in data[split]], [department_id(i) for _, i in data[split]]

    val_texts, val_gold = gold_of("val")
    val_tops, val_scores = top_scores(router, val_texts)
    _, oos_val_scores = top_scores(router, [t for t, _ in data["oos_val"]])
    # The operating point: the most in-scope accuracy on val whose oos_val recall meets the target.
    best = (-1.0, 0.0)
    for threshold in np.unique(np.concatenate([val_scores, oos_val_scores])):
        accuracy, recall = figures(val_tops, val_scores, val_gold, oos_val_scores, threshold)
        if recall >= args.target_oos and accuracy > best[0]:
            best = (accuracy, float(threshold))
    threshold = best[1]

    test_texts, test_gold = gold_of("test")
    test_tops, test_scores = top_scores(router, test_texts)
    _, oos_test_scores = top_scores(router, [t for t, _ in data["oos_test"]])
    accuracy, recall = figures(test_tops, test_scores, test_gold, oos_test_scores, threshold)
    raw = float(np.mean([t == g for t, g in zip(test_tops, test_gold, strict=True)]))

    print(
        f"Routing table from train: {len(table.departments)} departments, "
        f"{sum(len(r.examples) for r in table.rules)} examples; build {build_seconds:.1f} s"
    )
    print(
        f"Threshold chosen on val/oos_val (target oos recall ≥ {args.target_oos}): "
        f"clarify = answer = {threshold:.4f}\n"
    )
    print("| classifier | in-scope accuracy (%) | out-of-scope recall (%) |")
    print("|---|---|---|")
    print(f"| **Föreningslotsen router** | **{100 * accuracy:.1f}** | **{100 * recall:.1f}** |")
    print(f"| Föreningslotsen router, no threshold | {100 * raw:.1f} | 0.0 |")
    for name, paper_accuracy, paper_recall in PAPER:
        print(f"| {name} (paper) | {paper_accuracy} | {paper_recall} |")
    print("\nOther operating points on test (threshold → accuracy / oos recall), for the curve:")
    points = []
    for quantile in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3):
        th = float(np.quantile(val_scores, quantile))
        a, r = figures(test_tops, test_scores, test_gold, oos_test_scores, th)
        points.append(f"{th:.3f} → {100 * a:.1f}/{100 * r:.1f}")
    print("  " + "; ".join(points))

    if args.write_rules:
        table_data["thresholds"]["answer"] = table_data["thresholds"]["clarify"] = round(
            threshold, 4
        )
        args.write_rules.write_text(
            "# CLINC150 train split as a routing table (bench/clinc150.py --write-rules)\n"
            + yaml.safe_dump(table_data, allow_unicode=True, sort_keys=False, width=200),
            encoding="utf-8",
        )
        print(
            f"\nWrote {args.write_rules} (route with: concierge route --rules {args.write_rules})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
