"""`.ci/check_compose.py`: the real compose.yaml passes; a broken copy fails, naming why."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / ".ci" / "check_compose.py"


def _run(compose_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKER), str(compose_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def _broken_copy(tmp_path: Path, document: dict[str, Any]) -> Path:
    """The compose file beside a Dockerfile and the bind-mounted paths, as in the repo."""
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    target = tmp_path / "compose.yaml"
    target.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return target


def _document() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_real_compose_file_passes() -> None:
    result = _run(ROOT / "compose.yaml")
    assert result.returncode == 0, result.stderr
    assert "puente serve --host 0.0.0.0 --port 8000" in result.stdout
    assert "puente migrate" in result.stdout
    assert "PUENTE_SECRET_KEY" in result.stdout


def test_the_real_compose_file_survives_a_round_trip(tmp_path: Path) -> None:
    # The broken copies below are written the same way: a clean copy must pass.
    result = _run(_broken_copy(tmp_path, _document()))
    assert result.returncode == 0, result.stderr


def test_unknown_subcommand_and_unknown_setting_fail(tmp_path: Path) -> None:
    document = _document()
    document["services"]["worker"]["command"] = ["puente", "wroker"]
    document["services"]["api"]["environment"] = {
        **document["services"]["api"]["environment"],
        "PUENTE_DATABSE_URL": "postgresql+psycopg://puente@postgres/puente",
    }
    result = _run(_broken_copy(tmp_path, document))
    assert result.returncode == 1
    assert "services.worker.command: unknown subcommand 'wroker'" in result.stderr
    assert "PUENTE_DATABSE_URL is not a setting" in result.stderr


@pytest.mark.parametrize(
    ("service", "key", "value", "expected"),
    [
        (
            "api",
            "command",
            ["puente", "serve", "--hots", "localhost"],
            "`puente serve` has no option '--hots'",
        ),
        ("api", "command", ["puente", "serve", "--port"], "is refused (exit 2)"),
        ("beat", "depends_on", {"redys": {"condition": "service_healthy"}}, "no service named"),
        ("worker", "depends_on", {"beat": {"condition": "service_healthy"}}, "no healthcheck"),
        ("postgres", "environment", {"POSTGRES_PASSWORD": "${POSTGRES_PASSWORD:?"}, "unclosed"),
        ("redis", "command", ["redis-server", "--requirepass", "pa$5"], "lone '$'"),
        ("api", "build", {"context": ".", "dockerfile": "Containerfile"}, "does not exist"),
    ],
)
def test_other_mistakes_are_named(
    tmp_path: Path, service: str, key: str, value: object, expected: str
) -> None:
    document = _document()
    document["services"][service][key] = value
    result = _run(_broken_copy(tmp_path, document))
    assert result.returncode == 1
    assert expected in result.stderr
