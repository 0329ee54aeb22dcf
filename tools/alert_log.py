"""The example Alertmanager webhook receiver of docker-compose.yml: each alert it is sent becomes
one JSON log line on stdout (alert, status, service, summary, runbook_url), so `docker compose
logs alert-log` shows what would have paged someone. Replace it with a real receiver
(deploy/alertmanager/alertmanager.yml); it exists so that the compose stack's alerts reach
something out of the box.

    python -m tools.alert_log --host 0.0.0.0 --port 9099
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1024 * 1024


def lines(payload: dict[str, Any]) -> list[str]:
    """One log line per alert of an Alertmanager webhook payload (version 4)."""
    out = []
    for alert in payload.get("alerts") or []:
        labels, notes = alert.get("labels") or {}, alert.get("annotations") or {}
        out.append(json.dumps({
            "alert": labels.get("alertname"), "status": alert.get("status"),
            "severity": labels.get("severity"), "service": labels.get("service"),
            "summary": notes.get("summary"), "runbook_url": notes.get("runbook_url"),
            "starts_at": alert.get("startsAt")}, sort_keys=True))
    return out


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if self.path != "/alerts" or not 0 < length <= MAX_BODY:
            self.send_error(404 if self.path != "/alerts" else 413)
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_error(400, "not JSON")
            return
        for line in lines(payload):
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # requests are not news
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), _Handler).serve_forever()


if __name__ == "__main__":
    main()
