"""The analytics dashboard's two languages (services/analytics/static): every key the page and
its script use is in English and Chinese, the Chinese is Chinese, placeholders match, and the
HTML has no word of its own (everything comes from the catalogue in dashboard.js)."""

from __future__ import annotations

import json
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "services" / "analytics" / "static"
JS = (STATIC / "dashboard.js").read_text()
HTML = (STATIC / "index.html").read_text()
LANGS = ("en", "zh-CN")
# The same in both languages on purpose: names and the language switch's own labels.
SAME = {"csv", "col.sku", "col.sku_a", "lang.en", "lang.zh-CN"}


def _catalogue() -> dict[str, dict[str, str]]:
    block = JS.split("// <catalogue>")[1].split("// </catalogue>")[0]
    literal = block.split("const MESSAGES = ", 1)[1].rstrip().rstrip(";")
    parsed: dict[str, dict[str, str]] = json.loads(literal)
    return parsed


MESSAGES = _catalogue()
SCRIPT = JS.split("// </catalogue>")[1]


def _used_keys() -> set[str]:
    page = re.sub(r"<!--.*?-->", " ", HTML, flags=re.S)
    keys = set(re.findall(r'data-i18n(?:-placeholder)?="([^"]+)"', page))
    # Literal keys in the script: t("key"), series and units passed along
    keys |= set(re.findall(r'"((?:render|series|unit|table|col|search|filters)\.[a-z_]+)"',
                           SCRIPT))
    tiles = SCRIPT.split("const TILES = ")[1].split(";")[0]
    keys |= {f"kpi.{k}" for k in re.findall(r'\["([a-z0-9_]+)"', tiles)}
    return keys


def test_both_languages_have_the_same_keys() -> None:
    assert set(MESSAGES) == set(LANGS)
    assert set(MESSAGES["en"]) == set(MESSAGES["zh-CN"]), sorted(
        set(MESSAGES["en"]) ^ set(MESSAGES["zh-CN"]))


def test_every_key_used_is_in_both_languages() -> None:
    used = _used_keys()
    assert len(used) > 60 and "render.done" in used and "kpi.fill_rate" in used
    for lang in LANGS:
        missing = sorted(k for k in used if not MESSAGES[lang].get(k))
        assert not missing, f"{lang} lacks {missing}"


def test_the_codes_the_reports_carry_have_words() -> None:
    # The statuses, KPIs and segments the reports name (analytics' domain), in both languages
    from services.analytics import domain

    segments = {"champions", "loyal", "new", "at_risk", "needs_attention", "lost"}
    assert {domain.rfm_segment(d, f) for d, f in
            ((1, 3), (40, 2), (1, 1), (100, 2), (60, 1), (200, 1))} == segments
    for lang in LANGS:
        for code in segments:
            assert f"segment.{code}" in MESSAGES[lang]
        for status in ("placed", "accepted", "on_hold", "reserved", "shipped", "delivered"):
            assert f"status.{status}" in MESSAGES[lang]


def test_chinese_is_chinese() -> None:
    latin = sorted(k for k, v in MESSAGES["zh-CN"].items()
                   if k not in SAME and not re.search(r"[\u4e00-\u9fff]", v))
    assert not latin, latin


def test_placeholders_match_between_languages() -> None:
    for key, text in MESSAGES["en"].items():
        assert sorted(re.findall(r"%\((\w+)\)s", text)) == sorted(
            re.findall(r"%\((\w+)\)s", MESSAGES["zh-CN"][key])), key


def test_the_page_has_no_words_of_its_own() -> None:
    text = re.sub(r"<!--.*?-->", " ", HTML, flags=re.S)
    text = re.sub(r"<script.*?</script>", " ", text, flags=re.S)
    # the hidden marker the tests read is not for readers
    text = re.sub(r'<span id="render-status"[^>]*>.*?</span>', " ", text, flags=re.S)
    attributes = re.findall(r'(?<![\w-])(?:placeholder|title|aria-label|alt)="([^"]*)"', text)
    text = re.sub(r"<[^>]*>", " ", text, flags=re.S)
    words = re.findall(r"[A-Za-z\u4e00-\u9fff]{2,}", text)
    assert not words, words[:10]
    assert not attributes, attributes


def test_the_script_builds_no_sentence_of_its_own() -> None:
    # User-facing text is set through t()/label(); the only literal text assigned is the hidden
    # marker for tests ("rendered charts=...", "error: ...").
    assigned = re.findall(r'textContent = ("[^"]*")', SCRIPT)
    assert set(assigned) <= {'"rendered charts="', '"error: "'}, assigned
