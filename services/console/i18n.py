"""The console's two languages: message catalogues, the language a request gets, and dates and
money as its reader expects them.

Catalogues are gettext `.po` files under `locale/<lang>/LC_MESSAGES/console.po`, read with Babel.
Message ids are keys (`nav.orders`), not English sentences: a key missing from a language shows up
as itself, and the catalogue test checks that every key used anywhere is in both files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES: tuple[str, ...] = ("en", "zh_CN")
DEFAULT_LANGUAGE = "en"


@lru_cache
def catalogue(lang: str) -> dict[str, str]:
    """key -> text of one language (entries with an empty translation left out)."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "console.po"
    with path.open("rb") as f:
        cat = read_po(f, locale=lang)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string}


def negotiate(accept_language: str | None) -> str:
    """The language for an `Accept-Language` header: zh (any region or script) is zh_CN, else
    English."""
    ranked: list[tuple[float, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag:
            ranked.append((-q + i * 1e-6, tag.strip().lower()))
    for _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


# Orders carry no language: the buyer's is taken from the shipping country. Only the console's
# two languages exist, so everyone else reads English.
CHINESE_SPEAKING = frozenset({"CN", "TW", "HK", "MO"})


def buyer_language(country: str | None) -> str:
    return "zh_CN" if (country or "").upper() in CHINESE_SPEAKING else "en"


def bcp47(lang: str) -> str:
    return lang.replace("_", "-")


def valid_language(value: str | None) -> str | None:
    return value if value in LANGUAGES else None


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class Translator:
    """What a template calls: `_("key", n=3)`, `label("status", code)`, `dt(...)`, `money(...)`."""

    lang: str
    time_zone: str = "UTC"

    def gettext(self, key: str, **values: Any) -> str:
        text = catalogue(self.lang).get(key) or catalogue(DEFAULT_LANGUAGE).get(key) or key
        return text % values if values else text

    __call__ = gettext

    def label(self, kind: str, code: str | None) -> str:
        """A code from another service (a status, a reason) in words; the code itself when the
        catalogue does not know it (a service added one)."""
        if not code:
            return ""
        return catalogue(self.lang).get(f"{kind}.{code}") or code

    @property
    def babel_locale(self) -> Locale:
        return Locale.parse(self.lang)

    def dt(self, value: str | datetime | None) -> str:
        if not value:
            return ""
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
        else:
            moment = value
        return format_datetime(moment, "medium", tzinfo=zone(self.time_zone),
                               locale=self.babel_locale)

    def money(self, amount: str | Decimal | None, currency: str | None) -> str:
        if amount is None or amount == "":
            return ""
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            return str(amount)
        if not currency:
            return format_decimal(value, locale=self.babel_locale)
        return format_currency(value, currency, locale=self.babel_locale)

    def number(self, value: float | int | Decimal | None) -> str:
        return "" if value is None else format_decimal(value, locale=self.babel_locale)
