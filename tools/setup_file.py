"""A whole shop's setup as one YAML file (docs/setup.md), read from and written to a running
stack through each owning service's `/setup` API (shared/setup.py).

    version: 1
    sellers: {...}          # intake
    warehouses: {...}       # inventory
    ...

`export` asks every owner for its sections. `plan` sends each owner its sections as a dry run:
the owners validate (every problem with where it is) and answer what would be created or
updated. `apply` sends them for real, owner by owner in `OWNERS` order, so that a warehouse
exists (in inventory, and in logistics' copy) before logistics' zones name it. Nothing is
deleted by a file: an entry the file does not name is left as it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from shared import setup

VERSION = 1
# Which service owns which section, in the order an import applies them (shared/setup.py).
OWNERS, SECTIONS = setup.OWNERS, setup.SECTIONS
# Files shipped with Shopkeeper: the seed of a fresh stack, and `make run`'s two-currency shop.
SETUP_DIR = Path(__file__).resolve().parent.parent / "setup"
DEFAULT_FILE = SETUP_DIR / "default.yaml"
DEMO_FILE = SETUP_DIR / "demo.yaml"

# (service, method, path, body) -> the decoded JSON answer; raises SetupError for an error.
Call = Callable[[str, str, str, Any], Awaitable[Any]]


class SetupError(Exception):
    """A file that cannot be read, or an owner that refused it: one line per problem."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def read(path: Path) -> dict[str, Any]:
    """Load and check the file's shape (the owners check the entries)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SetupError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SetupError(f"{path} is not valid YAML: {exc}") from None
    return check(doc, str(path))


def check(doc: Any, where: str = "the setup") -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise SetupError(f"{where} must be a mapping with `version: {VERSION}` and sections")
    problems = []
    if doc.get("version") != VERSION:
        problems.append(f"version: must be {VERSION} (this Shopkeeper reads version {VERSION})")
    for section, entries in doc.items():
        if section == "version":
            continue
        if section not in SECTIONS:
            problems.append(f"{section}: not a setup section (known: {', '.join(SECTIONS)})")
        elif not isinstance(entries, dict):
            problems.append(f"{section}: must be a mapping of key to entry")
    if problems:
        raise SetupError(f"{where} is not a setup file", problems)
    return doc


def by_owner(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The file's sections grouped by owning service, in import order."""
    return {owner: {s: doc[s] for s in sections if doc.get(s)}
            for owner, sections in OWNERS.items() if any(doc.get(s) for s in sections)}


def dump(doc: dict[str, Any]) -> str:
    header = ("# Shopkeeper shop setup (docs/setup.md). `shopkeeper setup import FILE` shows what"
              " would change;\n# `--apply` applies it. Entries not named here are left as they"
              " are.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


async def export(call: Call) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": VERSION}
    for owner, sections in OWNERS.items():
        got = await call(owner, "GET", "/setup", None)
        for section in sections:
            doc[section] = got.get(section, {})
    return doc


async def plan(call: Call, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every owner's dry-run plan; all owners are asked even if one refuses, so that every
    problem in the file is reported at once."""
    plans: list[dict[str, Any]] = []
    problems: list[str] = []
    for owner, sections in by_owner(check(doc)).items():
        try:
            plans.append(await call(owner, "PUT", "/setup?dry_run=true", sections))
        except SetupError as exc:
            if getattr(exc, "status", None) == 409:
                # refers to something an earlier owner creates in this same file (a new
                # warehouse): it can only be planned once that exists
                plans.append({"service": owner, "dry_run": True, "changes": [],
                              "unchanged": 0, "waiting": str(exc)})
            else:
                problems += exc.problems or [f"{owner}: {exc}"]
    if problems:
        raise SetupError("the setup file has problems; nothing was changed", problems)
    return plans


async def apply(call: Call, doc: dict[str, Any], *, copy_wait: float = 30.0
                ) -> list[dict[str, Any]]:
    """Plan first (nothing changes if any owner refuses), then apply owner by owner. An owner
    that answers 409 is waiting for a copy of another owner's change (logistics learning a new
    warehouse from `setup.changed`): asked again for up to `copy_wait` seconds."""
    await plan(call, doc)
    applied = []
    for owner, sections in by_owner(doc).items():
        deadline = time.monotonic() + copy_wait
        while True:
            try:
                applied.append(await call(owner, "PUT", "/setup", sections))
                break
            except SetupError as exc:
                if getattr(exc, "status", None) != 409 or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    return applied


def problems_of(owner: str, status: int, detail: Any) -> SetupError:
    """An owner's refusal as a SetupError (with `status`), each problem `section.key.field:
    what is wrong`."""
    if isinstance(detail, dict) and detail.get("problems"):
        lines = [f"{p['at']}: {p['error']} ({owner})" for p in detail["problems"]]
        error = SetupError(f"{owner} refused the setup", lines)
    else:
        error = SetupError(f"{owner} answered {status}: {detail}", [f"{owner}: {detail}"])
    error.status = status  # type: ignore[attr-defined]
    return error
