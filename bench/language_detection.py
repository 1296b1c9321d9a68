"""How the member-language detector does: build time, memory, speed, and who it gets right.

    python bench/language_detection.py

Each configuration runs in a fresh process (so memory is its own): lingua limited to the
supported languages, in low-accuracy mode (trigram models, what the bot uses) and with the full
models, each deciding by the majority of words in single-language sections (what the bot does)
and, for comparison, by lingua's confidence for the whole text. Scored on
tests/data/languages.jsonl: 731 questions from the routing sets (Swedish, English, Arabic; many
mix in Swedish names). "kept" means the detector did not decide and the member's stored
language stays.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "tests" / "data" / "languages.jsonl"


def measure(low_accuracy: bool, method: str) -> dict[str, float]:
    """Runs in the child process."""
    sys.path.insert(0, str(ROOT))
    from bot.services import languages

    detector = languages.LanguageDetector.for_supported_languages()
    # What the bot already has loaded (its models, the catalogue) is not the detector's.
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    detector._low_accuracy = low_accuracy
    started = time.perf_counter()
    built = detector._built()
    build = time.perf_counter() - started
    items = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    right = wrong = kept = 0
    times = []
    for item in items:
        started = time.perf_counter()
        if method == "sections":
            found = detector.detect(item["text"])
        else:
            words = languages._WORD.findall(item["text"])
            found = None
            if len(words) >= languages.MIN_WORDS:
                values = built.compute_language_confidence_values(item["text"])
                if values and values[0].value >= 0.8:
                    found = values[0].language.iso_code_639_1.name.lower()
        times.append((time.perf_counter() - started) * 1000)
        if found is None:
            kept += 1
        elif found == item["language"]:
            right += 1
        else:
            wrong += 1
    times.sort()
    return {
        "build": build,
        "p50": statistics.median(times),
        "p99": times[int(len(times) * 0.99) - 1],
        "right": right,
        "wrong": wrong,
        "kept": kept,
        "rss_added": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline,
        "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(measure(sys.argv[2] == "low", sys.argv[3])))
        return
    rows = []
    for mode in ("low", "full"):
        for method in ("sections", "confidence"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, method],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows.append((mode, method, json.loads(out)))
    print(
        "| models | decides by | build incl. model load (s) | p50 (ms) | p99 (ms) "
        "| RSS added (MB) | peak RSS (MB) | right | wrong | kept |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode, method, r in rows:
        print(
            f"| {mode} | {method} | {r['build']:.2f} | {r['p50']:.2f} | {r['p99']:.2f} "
            f"| {r['rss_added']:.0f} | {r['rss_peak']:.0f} | {r['right']:.0f} "
            f"| {r['wrong']:.0f} | {r['kept']:.0f} |"
        )


if __name__ == "__main__":
    main()
