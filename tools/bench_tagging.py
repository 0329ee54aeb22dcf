"""Precision and recall of the feedback tagger (services/aftersales/tagging.py) on the labelled
set of English and Chinese reviews: `python -m tools.bench_tagging [--show-errors]`."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from services.aftersales.tagging import TAGS, tag_feedback

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "unit" / "data" / \
    "feedback_labelled.jsonl"


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def load(path: Path = LABELLED) -> list[tuple[str, set[str]]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [(r["comment"], set(r["tags"])) for r in rows]


def score(rows: list[tuple[str, set[str]]]) -> tuple[dict[str, Score], Score, list[str]]:
    per_tag = {tag: Score() for tag in TAGS}
    total = Score()
    errors = []
    for comment, expected in rows:
        got = set(tag_feedback(comment))
        for tag in TAGS:
            s = per_tag[tag]
            if tag in got and tag in expected:
                s.tp += 1
            elif tag in got:
                s.fp += 1
            elif tag in expected:
                s.fn += 1
        total.tp += len(got & expected)
        total.fp += len(got - expected)
        total.fn += len(expected - got)
        if got != expected:
            errors.append(f"{comment!r}: expected {sorted(expected)}, got {sorted(got)}")
    return per_tag, total, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    rows = load()
    chinese = sum(1 for c, _ in rows if any("\u4e00" <= ch <= "\u9fff" for ch in c))
    per_tag, total, errors = score(rows)
    print(f"{len(rows)} labelled reviews ({len(rows) - chinese} English, {chinese} Chinese or"
          " mixed)")
    print(f"{'tag':<12}{'precision':>10}{'recall':>8}{'f1':>6}{'tp':>5}{'fp':>4}{'fn':>4}")
    for tag, s in per_tag.items():
        print(f"{tag:<12}{s.precision:>10.2f}{s.recall:>8.2f}{s.f1:>6.2f}{s.tp:>5}{s.fp:>4}"
              f"{s.fn:>4}")
    print(f"{'all (micro)':<12}{total.precision:>10.2f}{total.recall:>8.2f}{total.f1:>6.2f}"
          f"{total.tp:>5}{total.fp:>4}{total.fn:>4}")
    print(f"{len(errors)} reviews tagged differently from their label")
    if args.show_errors:
        for e in errors:
            print("  " + e)


if __name__ == "__main__":
    main()
