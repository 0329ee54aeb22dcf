"""setup/default.yaml is the seed of a fresh stack: each owner's sections, read from a schema made
by its migrations alone, are exactly the file's (docs/setup.md). When a migration changes seed
data, regenerate the file with
`SHOPKEEPER_WRITE_DEFAULT_SETUP=1 .venv/bin/python -m pytest tests/handlers/test_setup_default.py`."""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest
import yaml

from shared import setup
from tools import setup_file

pytestmark = pytest.mark.asyncio


async def seed(service_db: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": setup_file.VERSION}
    for owner, sections in setup_file.OWNERS.items():
        kinds = {k.section: k for k in importlib.import_module(f"services.{owner}.kinds").KINDS}
        assert set(kinds) == set(sections), owner  # the file's map of owners is the services'
        async with service_db(owner) as db, db.pool.acquire() as conn:
            for section in sections:
                entries = await setup.current(conn, kinds[section])
                doc[section] = {key: e.model_dump(mode="json") for key, e in sorted(entries.items())}
    return doc


async def test_the_default_file_is_the_migrations_seed(service_db: Any) -> None:
    fresh = await seed(service_db)
    if os.environ.get("SHOPKEEPER_WRITE_DEFAULT_SETUP"):
        setup_file.DEFAULT_FILE.parent.mkdir(exist_ok=True)
        setup_file.DEFAULT_FILE.write_text(
            setup_file.dump(fresh).replace(
                "# Shopkeeper shop setup", "# The default setup: what a fresh stack's migrations"
                " seed (tests/handlers/test_setup_default.py keeps it so).\n# Shopkeeper shop"
                " setup", 1), encoding="utf-8")
    assert yaml.safe_load(setup_file.DEFAULT_FILE.read_text(encoding="utf-8")) == fresh
