"""Structured JSON logs with the ids an operator needs: order_id, event_id, correlation_id.

The ids of the event being handled live in a context variable, so every log line written while
handling it carries them without each call passing them. Never log addresses, emails or phones.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_event_ctx: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "shopkeeper_event_ctx", default=None
)
_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "color_message"}


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    current = dict(_event_ctx.get() or {})
    current.update({k: str(v) for k, v in ids.items() if v is not None})
    token = _event_ctx.set(current)
    try:
        yield
    finally:
        _event_ctx.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_event_ctx.get() or {})
        for key, value in record.__dict__.items():
            if key not in _STD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka and FastStream are chatty at INFO (every rebalance, every message); keep warnings.
    for noisy in ("aiokafka", "faststream", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
