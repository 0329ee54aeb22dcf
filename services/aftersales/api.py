"""After-sales operators' HTTP: the queue of requests that need a person."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request

from shared.http import require_admin

router = APIRouter()


@router.get("/requests/review", dependencies=[Depends(require_admin)])
async def review_queue(request: Request) -> list[dict[str, Any]]:
    rows = await request.app.state.runtime.pool.fetch(
        "SELECT order_key, request_id, kind, reason, lines, status, decision, created_at"
        " FROM requests WHERE status IN ('review', 'inspection') ORDER BY created_at LIMIT 500")
    return [{**dict(r), "lines": json.loads(r["lines"]), "decision": json.loads(r["decision"]),
             "created_at": r["created_at"].isoformat()} for r in rows]
