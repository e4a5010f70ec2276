"""Structured logs (§9) from a real `puente serve` process: one JSON object a line, request
ids and route templates, and never a name, a CURP, a query string or a body.

Names and CURPs travel in search parameters and in paths, so the server is sent exactly
that, through uvicorn's real parser, and everything it writes to stdout and stderr is read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from exchange import service as exchange
from puente.db import engine_for
from puente.migrate import upgrade
from tests.factories import organizations, token
from tests.live import free_port, puente_command, server_env, wait_until_up

NAME = "José Luis Hernández López"
CURP = "HELJ800101HCHRPS09"
QUOTED_NAME = "Jos%C3%A9%20Luis%20Hern%C3%A1ndez%20L%C3%B3pez"
# Every spelling a leak could take: accented, folded, any case, percent-encoded.
FOLDED_SECRETS = ("jose luis", "hernandez", "lopez", CURP.casefold(), "jos%c3%a9", "%c3%a1")
QUERY_STRING = re.compile(r"\?[^\s\"?]*=")
CLIENT_REQUEST_ID = "ops-log-test-0001"
SHUTDOWN_SECONDS = 10


@dataclass(frozen=True)
class Exchange:
    label: str
    status: int
    request_id: str


@dataclass(frozen=True)
class ServerRun:
    lines: list[str]
    records: list[dict[str, Any]]
    exchanges: list[Exchange]
    exit_code: int
    shutdown_seconds: float


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _fresh_database(path: Path) -> str:
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = engine_for(url)
    with Session(engine) as session:
        organizations(session)
        # A directory entry whose name is the one searched for: it comes back in the
        # response body, which must not reach the log either.
        exchange.register_hospital_organization(session, code="hjlhl", name=NAME, country="MX")
        session.commit()
    engine.dispose()
    return url


def _malformed_request(port: int) -> None:
    """A request uvicorn's parser refuses, so that uvicorn itself logs (a warning)."""
    raw = (
        f"GET /fhir/Patient?identifier={CURP}&name={QUOTED_NAME} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nContent-Length: not-a-number\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        sock.recv(4096)


def _send_requests(base: str, port: int) -> list[Exchange]:
    auth = {"Authorization": f"Bearer {token()}"}
    calls: list[tuple[str, str, str, dict[str, str], str | None]] = [
        # label, method, path and query, headers, form body
        ("search", "GET", f"/fhir/Organization?name={QUOTED_NAME}&identifier={CURP}", auth, None),
        (
            "search-post",
            "POST",
            "/fhir/Organization/_search",
            {**auth, "Content-Type": "application/x-www-form-urlencoded"},
            f"name={QUOTED_NAME}&identifier={CURP}",
        ),
        ("not-found", "GET", f"/fhir/Organization/{CURP}", auth, None),
        (
            "bad-token",
            "GET",
            f"/fhir/Patient?identifier={CURP}",
            {"Authorization": "Bearer not-a-token"},
            None,
        ),
        ("unknown-path", "GET", f"/pacientes/{CURP}/expediente?curp={CURP}", {}, None),
        ("probe", "GET", "/healthz", {"X-Request-ID": CLIENT_REQUEST_ID}, None),
    ]
    exchanges = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for label, method, target, headers, body in calls:
            response = client.request(method, target, headers=headers, content=body)
            exchanges.append(
                Exchange(label, response.status_code, response.headers["X-Request-ID"])
            )
    _malformed_request(port)
    return exchanges


@pytest.fixture(scope="module")
def server_run(tmp_path_factory: pytest.TempPathFactory) -> ServerRun:
    root = tmp_path_factory.mktemp("serve")
    database_url = _fresh_database(root / "puente.db")
    log = root / "server.log"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [*puente_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=server_env(database_url),
            cwd=root,
        )
        try:
            wait_until_up(process, base, log)
            exchanges = _send_requests(base, port)
            asked = time.monotonic()
            process.send_signal(signal.SIGTERM)
            exit_code = process.wait(timeout=SHUTDOWN_SECONDS)
            shutdown = time.monotonic() - asked
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    lines = [line for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    return ServerRun(lines, records, exchanges, exit_code, shutdown)


def _access(run: ServerRun) -> list[dict[str, Any]]:
    return [r for r in run.records if r.get("logger") == "puente.access"]


def test_every_line_is_a_json_object(server_run: ServerRun) -> None:
    assert server_run.lines
    assert all(isinstance(record, dict) for record in server_run.records)
    assert all(
        {"time", "level", "logger", "event"} <= record.keys() for record in server_run.records
    )


def test_uvicorn_lines_are_json_too(server_run: ServerRun) -> None:
    uvicorn = [r["event"] for r in server_run.records if r["logger"].startswith("uvicorn")]
    assert any(event.startswith("Started server process") for event in uvicorn)
    assert "Invalid HTTP request received." in uvicorn  # the malformed request


def test_no_name_curp_query_string_or_body_reaches_the_log(server_run: ServerRun) -> None:
    for line, record in zip(server_run.lines, server_run.records, strict=True):
        for text in (line, json.dumps(record, ensure_ascii=False)):
            folded = _fold(text)
            leaked = [secret for secret in FOLDED_SECRETS if secret in folded]
            assert not leaked, f"{leaked} in log line {line!r}"
            assert not QUERY_STRING.search(text), f"query string in log line {line!r}"
        for spelling in ("Hernández", "Hernandez", "HERNANDEZ", "José", NAME, CURP):
            assert spelling not in line


def test_access_lines_carry_request_id_and_route_template(server_run: ServerRun) -> None:
    access = _access(server_run)  # the readiness polls, then the requests sent
    for exchange_ in server_run.exchanges:
        assert [r["request_id"] for r in access].count(exchange_.request_id) == 1
    for record in access:
        assert isinstance(record["request_id"], str)
        assert record["request_id"]
        assert record["route"].startswith(("/", "<"))
        assert "?" not in record["route"]
    by_label = {e.label: e for e in server_run.exchanges}
    routes = {r["request_id"]: r["route"] for r in access}
    assert routes[by_label["search"].request_id] == "/fhir/{resource_type}"
    assert routes[by_label["search-post"].request_id] == "/fhir/{resource_type}/_search"
    assert routes[by_label["not-found"].request_id] == "/fhir/{resource_type}/{res_id}"
    # Refused before routing, yet logged under the template the path would have matched.
    assert routes[by_label["bad-token"].request_id] == "/fhir/{resource_type}"
    assert routes[by_label["unknown-path"].request_id] == "<unmatched>"
    assert routes[by_label["probe"].request_id] == "/healthz"


def test_response_request_id_matches_its_access_line(server_run: ServerRun) -> None:
    access = {r["request_id"]: r for r in _access(server_run)}
    expected = {"search": 200, "search-post": 200, "not-found": 404, "bad-token": 401}
    expected |= {"unknown-path": 404, "probe": 200}
    for exchange_ in server_run.exchanges:
        assert exchange_.status == expected[exchange_.label], exchange_
        line = access[exchange_.request_id]
        assert line["status"] == exchange_.status
    probe = next(e for e in server_run.exchanges if e.label == "probe")
    assert probe.request_id == CLIENT_REQUEST_ID


def test_sigterm_shuts_down_promptly_and_cleanly(server_run: ServerRun) -> None:
    assert server_run.exit_code == 0
    assert server_run.shutdown_seconds < 5
    events = [r["event"] for r in server_run.records]
    assert "Application shutdown complete." in events
    assert any(event.startswith("Finished server process") for event in events)


def test_refused_settings_are_one_json_line_without_the_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUENTE_")}
    secret = "too-short-but-still-secret"
    env |= {"PUENTE_ENV": "production", "PUENTE_SECRET_KEY": secret}
    result = subprocess.run(
        [*puente_command(), "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["event"] == "settings_refused"
    assert any("PUENTE_SECRET_KEY" in problem for problem in record["problems"])
    assert secret not in lines[0]


def test_celery_task_arguments_results_and_errors_are_hidden() -> None:
    from puente.logs import JSONFormatter

    data = {
        "id": "0b5e",
        "name": "puente.example",
        "args": f"('{NAME}',)",
        "kwargs": f"{{'curp': '{CURP}'}}",
        "return_value": NAME,
        "exc": f"IntegrityError: duplicate key ({CURP})",
        "traceback": f"Traceback ...\nValueError: {NAME}",
        "runtime": 0.01,
    }
    try:
        raise ValueError(NAME)
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "celery.app.trace",
        logging.ERROR,
        __file__,
        1,
        "Task %(name)s[%(id)s] raised unexpected: %(exc)s; %(return_value)s",
        (data,),  # as Celery passes it: one mapping of arguments
        exc_info,
    )
    record.data = data
    line = JSONFormatter().format(record)
    assert not [secret for secret in FOLDED_SECRETS if secret in _fold(line)], line
    payload = json.loads(line)
    assert payload["event"] == "Task puente.example[0b5e] raised unexpected: [hidden]; [hidden]"
    assert payload["data"]["runtime"] == 0.01
    assert payload["exception"] == "ValueError"
