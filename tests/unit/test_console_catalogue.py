"""The console's message catalogue: every key used anywhere is in English and Chinese, no text
is hard-coded in a template, and dates and money follow the language."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.aftersales.tagging import TAGS
from services.console.i18n import LANGUAGES, Translator, buyer_language, catalogue, negotiate
from services.console.pages import CASE_RESOLUTIONS, CASE_STATUSES, SEARCHES

CONSOLE = Path(__file__).resolve().parents[2] / "services" / "console"
TEMPLATES = sorted((CONSOLE / "templates").glob("*.html"))


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*TEMPLATES, CONSOLE / "pages.py", CONSOLE / "app.py", CONSOLE / "web.py"]:
        text = path.read_text()
        keys |= set(re.findall(r"_\(\s*[\"']([a-z_]+\.[a-z0-9_.]+)[\"']", text))
        keys |= set(re.findall(r"(?:ok|err|title_key|message_key)=\"([a-z_]+\.[a-z_.]+)\"", text))
        keys |= set(re.findall(r"again\(\"([a-z_.]+)\"", text))
        keys |= set(re.findall(r"\"/[a-z]*\", \"[a-z_.]+\", \"(nav\.[a-z]+)\"", text))
    return {k for k in keys if not k.endswith(".")}  # prefixes of built keys: _dynamic_keys


def _dynamic_keys() -> set[str]:
    """Keys built in templates: `_("role." ~ r)`, `_("lang." ~ code)`, ..."""
    from services.console.roles import ROLES

    return ({f"role.{r}" for r in ROLES} | {f"lang.{lang}" for lang in LANGUAGES}
            | {f"orders.by.{b}" for b in SEARCHES}
            | {f"station.refused.{s}" for s in ("scan", "weigh", "pack")}
            | {f"exceptions.kind.{k}" for k in ("exception", "lost", "stalled")}
            | {f"cases.status.{s}" for s in CASE_STATUSES}
            | {f"cases.resolution.{r}" for r in CASE_RESOLUTIONS}
            | {f"cases.note_kind.{k}" for k in ("assigned", "comment", "closed", "reopened")}
            | {f"cases.{step}_done" for step in ("assign", "comments", "close", "reopen")}
            | {f"feedback_tag.{tag}" for tag in TAGS})


def test_every_key_used_is_in_both_languages() -> None:
    used = _used_keys() | _dynamic_keys()
    assert len(used) > 150
    for lang in LANGUAGES:
        missing = sorted(k for k in used if not catalogue(lang).get(k))
        assert not missing, f"{lang} lacks {missing}"


def test_both_languages_have_the_same_keys() -> None:
    en, zh = catalogue("en"), catalogue("zh_CN")
    assert set(en) == set(zh), sorted(set(en) ^ set(zh))


def test_chinese_is_chinese() -> None:
    # Every Chinese entry has Chinese characters, except names that stay as they are
    same = {"lang.en", "lang.zh_CN", "wave.col.sku"}
    zh = catalogue("zh_CN")
    latin_only = sorted(k for k, v in zh.items() if k not in same
                        and not re.search(r"[\u4e00-\u9fff]", v))
    assert not latin_only, latin_only


def test_placeholders_match_between_languages() -> None:
    en, zh = catalogue("en"), catalogue("zh_CN")
    for key, text in en.items():
        assert sorted(re.findall(r"%\((\w+)\)s", text)) == sorted(
            re.findall(r"%\((\w+)\)s", zh[key])), key


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_no_text_is_hard_coded_in_a_template(template: Path) -> None:
    # Given the template without Jinja expressions, statements, comments, tags, scripts
    text = template.read_text()
    text = re.sub(r"<script.*?</script>", " ", text, flags=re.S)
    text = re.sub(r"<style.*?</style>", " ", text, flags=re.S)
    text = re.sub(r"\{#.*?#\}", " ", text, flags=re.S)
    text = re.sub(r"\{%.*?%\}", " ", text, flags=re.S)
    text = re.sub(r"\{\{.*?\}\}", " ", text, flags=re.S)
    attributes = re.findall(r"\b(?:placeholder|title|aria-label|alt)=\"([^\"]*)\"", text)
    text = re.sub(r"<[^>]*>", " ", text, flags=re.S)
    # Then no word is left for a reader: every string goes through the catalogue
    words = re.findall(r"[A-Za-z\u4e00-\u9fff]{2,}", text)
    assert not words, f"hard-coded text in {template.name}: {words[:10]}"
    assert not [a for a in attributes if a.strip()], attributes


@pytest.mark.parametrize(("header", "lang"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"), ("zh-TW", "zh_CN"), ("zh-Hans-CN", "zh_CN"),
    ("en-US,en;q=0.9", "en"), ("de-DE,en;q=0.5,zh;q=0.9", "zh_CN"), ("fr", "en"), (None, "en"),
    ("", "en"), ("en;q=0.9, zh;q=0.1", "en"), ("garbage;q=x", "en"),
])
def test_language_from_accept_language(header: str | None, lang: str) -> None:
    assert negotiate(header) == lang


def test_dates_follow_the_users_time_zone_and_language() -> None:
    moment = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert "18:00" in Translator("zh_CN", "Asia/Shanghai").dt(moment)
    assert "2026年11月27日" in Translator("zh_CN", "Asia/Shanghai").dt(moment)
    assert "Nov 27, 2026" in Translator("en", "America/New_York").dt(moment)
    assert "5:00" in Translator("en", "America/New_York").dt("2026-11-27T10:00:00Z")
    assert Translator("en", "No/Such_Zone").dt(moment)  # an unknown zone falls back to UTC


def test_money_is_formatted_per_currency_and_language() -> None:
    assert Translator("en").money("1234.5", "USD") == "$1,234.50"
    assert Translator("zh_CN").money("1234.5", "CNY") == "¥1,234.50"
    assert Translator("en").money("1234.5", "EUR") == "€1,234.50"
    assert Translator("en").money("12", "JPY") == "¥12"
    assert Translator("zh_CN").money("12.5", "USD") == "US$12.50"
    assert Translator("en").money(None, "USD") == ""


def test_a_service_code_the_catalogue_lacks_shows_as_itself() -> None:
    t = Translator("zh_CN")
    assert t.label("status", "reserved") == "已预留库存"
    assert t.label("status", "teleported") == "teleported"
    assert t("review.sla_left", minutes=5) == "剩余 5 分钟"


@pytest.mark.parametrize(("country", "lang"), [("CN", "zh_CN"), ("tw", "zh_CN"), ("HK", "zh_CN"),
                                               ("US", "en"), ("DE", "en"), (None, "en")])
def test_the_buyers_language_comes_from_the_shipping_country(country: str | None,
                                                              lang: str) -> None:
    assert buyer_language(country) == lang


@pytest.mark.parametrize("decision", ["wait", "substitute", "cancel"])
def test_every_backorder_message_is_in_both_languages_with_the_same_blanks(decision: str
                                                                           ) -> None:
    for part in ("subject", "body"):
        key = f"msg.backorder.{decision}.{part}"
        texts = [catalogue(lang)[key] for lang in LANGUAGES]
        filled = [Translator(lang)(key, order="1001", sku="MUG-01", substitute="MUG-02",
                                   eta="soon") for lang in LANGUAGES]
        assert all("%(" not in f for f in filled), filled
        assert len({tuple(sorted(re.findall(r"%\((\w+)\)s", t))) for t in texts}) == 1


def test_the_new_pages_codes_are_words_in_both_languages() -> None:
    # Every carrier status (the contract's), every kind of parcel exception (logistics'
    # answer), every orders search, in English and Chinese
    from typing import get_args

    from services.logistics.schemas import ParcelException
    from shared.contracts.public import TrackingStatus

    kinds = get_args(ParcelException.model_fields["kind"].annotation)
    wanted = ({f"tracking.{s}" for s in get_args(TrackingStatus)}
              | {f"exceptions.kind.{k}" for k in kinds}
              | {f"orders.by.{b}" for b in SEARCHES}
              | {"exceptions.release", "exceptions.released", "exceptions.release_gone",
                 "exceptions.quarantined", "exceptions.parcels", "dashboard.charts"})
    assert len(kinds) == 3 and len(wanted) > 20
    for lang in LANGUAGES:
        missing = sorted(k for k in wanted if not catalogue(lang).get(k))
        assert not missing, f"{lang} lacks {missing}"
    zh = catalogue("zh_CN")
    assert zh["tracking.lost"] != catalogue("en")["tracking.lost"]
