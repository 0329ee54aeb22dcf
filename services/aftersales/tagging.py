"""Feedback tags: what a customer's comment is about, in English and Chinese.

A comment is cut into words (jieba, which segments Chinese and keeps Latin words whole) and into
clauses at punctuation. A keyword matches whole words only, never part of one ("chocolate" is not
"late"), and a match preceded in its clause by a negation ("not damaged", "没有损坏") does not
count. Keywords that carry their own negation ("doesn't fit", "没收到") are phrases of their own.
A tag is set when one of its keywords matches, unless a phrase listed in `CLEARS` says the
opposite ("true to size").

Quality is measured on a labelled set (tests/unit/data/feedback_labelled.jsonl); `python -m
tools.bench_tagging` prints precision and recall per tag. docs/aftersales.md has the figures.
"""

from __future__ import annotations

import itertools
import logging
import re
import unicodedata
from functools import lru_cache

import jieba

jieba.setLogLevel(logging.WARNING)

TAGS: dict[str, tuple[str, ...]] = {
    "damaged": (
        "damaged", "damage", "broken", "broke", "cracked", "crack", "smashed", "dented",
        "shattered", "torn", "crushed", "scratched", "leaking", "leaked",
        "损坏", "破损", "坏了", "坏", "碎", "碎了", "压坏", "摔坏", "裂", "裂开", "裂了", "划痕",
        "漏", "变形", "压扁",
    ),
    "late": (
        "late", "slow", "slowly", "delay", "delayed", "delays", "took forever", "weeks",
        "took ages", "still waiting", "long time", "overdue",
        "慢", "太慢", "很慢", "迟", "延误", "延迟", "晚到", "太久", "很久", "好久", "等了",
        "迟迟",
    ),
    "quality": (
        "poor quality", "bad quality", "low quality", "cheap", "cheaply", "flimsy", "fake",
        "poorly made", "badly made", "fell apart", "falls apart", "counterfeit", "knockoff",
        "劣质", "质量差", "质量很差", "质量太差", "质量不好", "质量一般", "做工差", "做工粗糙",
        "粗糙", "假货", "山寨", "廉价", "掉色", "起球",
    ),
    "size": (
        "too small", "too big", "too large", "too tight", "too loose", "tight", "loose",
        "runs small", "runs large", "runs big", "wrong size", "size", "sizing", "not fit",
        "尺码", "尺寸", "太小", "太大", "偏小", "偏大", "不合身", "紧", "太紧", "小了", "大了",
        "码数",
    ),
    "wrong_item": (
        "wrong item", "wrong colour", "wrong color", "wrong product", "wrong model",
        "not what i ordered", "different item", "not the one i ordered", "sent the wrong",
        "发错", "错了", "不是我买的", "颜色不对", "型号不对", "货不对版", "发错货",
    ),
    "missing": (
        "missing", "incomplete", "not received", "never arrived", "never received",
        "not arrived", "did not arrive", "did not receive", "only got", "lost",
        "少了", "缺", "少发", "漏发", "没收到", "未收到", "没有收到", "还没到", "没到", "丢了",
        "丢件", "不见了",
    ),
    "praise": (
        "great", "love", "loved", "excellent", "perfect", "perfectly", "amazing", "awesome",
        "fantastic", "wonderful", "happy", "recommend", "good",
        "好评", "喜欢", "满意", "很好", "不错", "完美", "推荐", "超赞", "赞", "棒", "很棒",
        "非常好",
    ),
}

# Phrases that say a tag does not apply, even where one of its keywords occurs.
CLEARS: dict[str, tuple[str, ...]] = {
    "size": ("true to size", "size is right", "size is perfect", "fits well", "fits perfectly",
             "尺码标准", "尺码合适", "大小合适", "尺寸合适", "尺码正好"),
}

NEGATIONS = frozenset({
    "not", "no", "never", "without", "nothing", "none", "hardly", "barely", "nor",
    "没", "没有", "不", "不是", "无", "未", "并未", "毫无", "别", "并不", "从未", "没什么",
})

# How many words before a keyword a negation reaches ("not at all damaged").
NEGATION_REACH = 3

_LATIN = re.compile(r"^[a-z0-9]+$")
_CONTRACTION = re.compile("n['\u2019]t\\b")


def _ends_clause(token: str) -> bool:
    """Punctuation and symbols, in any script (full-width Chinese commas too), end a clause."""
    return all(unicodedata.category(ch)[0] in "PSZ" for ch in token)


def _words(text: str) -> list[list[str]]:
    """The comment's clauses, each a list of words: lower case, "n't" as "not"."""
    text = _CONTRACTION.sub(" not", text.lower().replace("can't", "can not")
                            .replace("won't", "will not"))
    clauses: list[list[str]] = [[]]
    for token in jieba.lcut(text):
        if not token.strip() or _ends_clause(token):
            if token.strip() and clauses[-1]:
                clauses.append([])
            continue
        clauses[-1].append(token)
    return [c for c in clauses if c]


def _join(words: list[str]) -> str:
    out = words[0]
    for prev, word in itertools.pairwise(words):
        out += (" " if _LATIN.match(prev) and _LATIN.match(word) else "") + word
    return out


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, set[str]], dict[str, set[str]], int]:
    """Keyword -> tags, clearing phrase -> tags, and the most words a phrase spans. Chinese
    keywords join jieba's dictionary, so that the segmenter keeps them whole ("没收到" is "did
    not receive", not "没收" "confiscate" followed by "到")."""
    phrases = [w for words in (*TAGS.values(), *CLEARS.values()) for w in words]
    for w in phrases:
        if not _LATIN.match(w.replace(" ", "")):
            jieba.suggest_freq(w, tune=True)
    longest = max(len(_words(w)[0]) for w in phrases)
    keywords: dict[str, set[str]] = {}
    for tag, words in TAGS.items():
        for w in words:
            keywords.setdefault(w, set()).add(tag)
    clears: dict[str, set[str]] = {}
    for tag, words in CLEARS.items():
        for w in words:
            clears.setdefault(w, set()).add(tag)
    return keywords, clears, longest


def warm() -> None:
    """Load jieba's dictionary and the keyword index now (seconds, once per process)."""
    jieba.initialize()
    _index()


def tag_feedback(comment: str | None) -> list[str]:
    """The sorted tags of a comment (see the module's docstring)."""
    if not comment:
        return []
    keywords, clears, longest = _index()
    found: set[str] = set()
    cleared: set[str] = set()
    for clause in _words(comment):
        for start in range(len(clause)):
            for end in range(start + 1, min(len(clause), start + longest) + 1):
                phrase = _join(clause[start:end])
                cleared |= clears.get(phrase, set())
                tags = keywords.get(phrase)
                if not tags:
                    continue
                before = clause[max(0, start - NEGATION_REACH):start]
                if any(w in NEGATIONS for w in before):
                    continue
                found |= tags
    return sorted(found - cleared)
