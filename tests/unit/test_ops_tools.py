"""The operators' tools without a stack: the CLI's addresses, --version and --json errors, and
the example Alertmanager webhook receiver of docker-compose.yml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from http.server import ThreadingHTTPServer

import pytest

from tests.conftest import ROOT
from tools import alert_log
from tools.endpoints import service_url


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, env={**os.environ, **env})


def test_a_service_url_comes_from_its_variable_else_the_local_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPKEEPER_INVENTORY_URL", raising=False)
    monkeypatch.setenv("SHOPKEEPER_INVENTORY_PORT", "18002")
    assert service_url("inventory") == "http://127.0.0.1:18002"
    monkeypatch.setenv("SHOPKEEPER_INVENTORY_URL", "http://inventory.internal:8002/")
    assert service_url("inventory") == "http://inventory.internal:8002"
    with pytest.raises(ValueError, match="unknown service 'billing'"):
        service_url("billing")


def test_version_prints_the_installed_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("shopkeeper ") and result.stdout.split()[1][0].isdigit()


def test_json_errors_are_one_json_line_naming_the_url_the_variable_set() -> None:
    result = cli("--json", "backorders", "list", SHOPKEEPER_INVENTORY_URL="http://127.0.0.1:9")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
    error = json.loads(result.stderr)
    assert "cannot reach inventory at http://127.0.0.1:9" in error["error"]


def test_alert_log_writes_one_line_per_alert_with_its_runbook(capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), alert_log._Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    payload = {"version": "4", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "ConsumerBlocked", "service": "inventory",
                                        "severity": "page"},
         "annotations": {"summary": "inventory is waiting out a fault",
                         "runbook_url": "docs/OPERATIONS.md#consumerblocked"},
         "startsAt": "2026-03-01T09:30:00Z"},
        {"status": "resolved", "labels": {"alertname": "OrdersStuck", "severity": "warn"},
         "annotations": {}}]}
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.server_port}/alerts", json.dumps(payload).encode(),
            {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200
        with pytest.raises(urllib.error.HTTPError) as wrong:
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{server.server_port}/other", b"{}"), timeout=5)
        assert wrong.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"alert": "ConsumerBlocked", "status": "firing", "severity": "page", "service": "inventory",
         "summary": "inventory is waiting out a fault",
         "runbook_url": "docs/OPERATIONS.md#consumerblocked", "starts_at": "2026-03-01T09:30:00Z"},
        {"alert": "OrdersStuck", "status": "resolved", "severity": "warn", "service": None,
         "summary": None, "runbook_url": None, "starts_at": None}]
