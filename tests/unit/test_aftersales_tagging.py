"""Feedback tags by whole words and negation, with jieba for Chinese (services/aftersales/
tagging.py), and their quality on the labelled set of English and Chinese reviews."""

from __future__ import annotations

import pytest

from services.aftersales.tagging import tag_feedback
from tools.bench_tagging import load, score


@pytest.mark.parametrize("comment, tags", [
    # Part of a word is not the word.
    ("The chocolate was fresh", []),
    ("Latest firmware installed", []),
    ("巧克力很好吃", []),
    ("缺货了吗", []),
    # A negated keyword does not count; a keyword that carries its negation does.
    ("没有损坏", []),
    ("Not damaged at all", []),
    ("The parcel wasn't late", []),
    ("无损坏，无划痕", []),  # noqa: RUF001
    ("不是很满意", []),
    ("It doesn't fit", ["size"]),
    ("Not what I ordered", ["wrong_item"]),
    ("还没有收到", ["missing"]),
    ("I have not received it", ["missing"]),
    # A negation reaches only within its clause.
    ("No complaints, but it arrived broken", ["damaged"]),
    ("没有问题，就是太慢了", ["late"]),  # noqa: RUF001
    # A phrase that says the opposite clears the tag.
    ("True to size", []),
    ("尺码标准", []),
    # Mixed languages in one comment.
    ("Arrived late, 包装破损", ["damaged", "late"]),
])
def test_tags_are_whole_words_and_respect_negation(comment: str, tags: list[str]) -> None:
    assert tag_feedback(comment) == tags


def test_the_labelled_set_has_a_hundred_reviews_in_each_language_mix() -> None:
    rows = load()
    chinese = [c for c, _ in rows if any("\u4e00" <= ch <= "\u9fff" for ch in c)]
    assert len(rows) >= 100
    assert len(chinese) >= 50 and len(rows) - len(chinese) >= 50
    assert all(set(tags) <= {"damaged", "late", "quality", "size", "wrong_item", "missing",
                             "praise"} for _, tags in rows)


def test_precision_and_recall_on_the_labelled_set_stay_above_their_floor() -> None:
    """A regression guard, not a measurement: `python -m tools.bench_tagging` prints the figures
    (docs/aftersales.md). The floors sit below today's 0.98 / 0.97 so that a keyword added for
    one case cannot silently break others."""
    per_tag, total, errors = score(load())
    assert total.precision >= 0.95, errors
    assert total.recall >= 0.93, errors
    assert all(s.f1 >= 0.8 for s in per_tag.values()), {t: s.f1 for t, s in per_tag.items()}
