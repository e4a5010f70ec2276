"""Check compose.yaml against the code it deploys, without Docker.

- every `puente ...` command (service `command`/`entrypoint`, the Dockerfile's `CMD`) names
  a subcommand of the typer app, nested groups included (`audit verify`), and the options
  it passes are accepted (the command line is run with `--help` appended: click parses
  every option before it answers `--help`, so an unknown one fails with exit 2);
- every `PUENTE_*` variable in a service's environment is a field of `Settings`;
- `depends_on` names services (and `service_healthy` ones have a healthcheck), named
  volumes are declared, bind-mounted paths and the Dockerfile exist;
- every `$` interpolation is well-formed (`$VAR`, `${VAR}`, `${VAR:-default}`,
  `${VAR:?message}`, ... and `$$` for a literal dollar).

Usage: python .ci/check_compose.py [compose.yaml]. Exit 0 and a summary when all is well,
exit 1 naming every problem.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml
from typer.testing import CliRunner

from puente.cli import app
from puente.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# `${NAME}` or `${NAME<op><text>}`, op one of :- - :? ? :+ + (the compose specification).
BRACED = re.compile(rf"({NAME})(?:(:?[-?+])(.*))?", re.DOTALL)
CONDITIONS = frozenset({"service_started", "service_healthy", "service_completed_successfully"})
SETTINGS = frozenset(f"PUENTE_{name.upper()}" for name in Settings.model_fields)


@dataclass
class Report:
    # A problem shared through a YAML anchor is reported once, with the other places.
    places: dict[str, list[str]] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    settings: set[str] = field(default_factory=set)

    def problem(self, where: str, text: str) -> None:
        self.places.setdefault(text, []).append(where)

    @property
    def problems(self) -> list[str]:
        lines = []
        for text, places in self.places.items():
            also = f" (also {', '.join(places[1:])})" if len(places) > 1 else ""
            lines.append(f"{places[0]}: {text}{also}")
        return lines


# -- interpolation -------------------------------------------------------------------------


def _closing_brace(text: str, start: int) -> int | None:
    """Index of the `}` closing the `{` at `start`, nested `${...}` allowed."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def interpolation_problems(text: str) -> list[str]:
    problems: list[str] = []
    index = text.find("$")
    while index != -1:
        after = text[index + 1 : index + 2]
        if after == "$":  # `$$`: a literal dollar
            index = text.find("$", index + 2)
            continue
        if after == "{":
            end = _closing_brace(text, index + 1)
            if end is None:
                return [*problems, f"unclosed '${{' in {text!r}"]
            inner = text[index + 2 : end]
            match = BRACED.fullmatch(inner)
            if match is None:
                problems.append(f"malformed interpolation '${{{inner}}}'")
            elif match.group(3):
                problems.extend(interpolation_problems(match.group(3)))
            index = text.find("$", end + 1)
            continue
        if re.match(NAME, text[index + 1 :]) is None:
            problems.append(f"lone '$' in {text!r} (write '$$' for a literal dollar)")
        index = text.find("$", index + 1)
    return problems


def _strings(node: Any, where: str, seen: set[int]) -> Iterator[tuple[str, str]]:
    """Every string in the document with its place; an aliased node is visited once."""
    if isinstance(node, str):
        yield where, node
        return
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{where}.{key}", seen)
    elif isinstance(node, list):
        for position, value in enumerate(node):
            yield from _strings(value, f"{where}[{position}]", seen)


# -- the puente command line ---------------------------------------------------------------


def _argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def _subcommands(command: Any) -> dict[str, Any]:
    commands = getattr(command, "commands", None)
    return dict(commands) if isinstance(commands, dict) else {}


def _option_names(command: Any) -> set[str]:
    names: set[str] = {"--help"}
    for param in getattr(command, "params", []):
        names.update(getattr(param, "opts", []))
        names.update(getattr(param, "secondary_opts", []))
    return {name for name in names if name.startswith("-")}


def check_puente_command(argv: list[str], where: str, report: Report) -> None:
    """`argv` is what follows the `puente` executable."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    rest = list(argv)
    while rest and _subcommands(command):
        name = rest[0]
        known = _subcommands(command)
        if name not in known:
            prefix = " ".join(["puente", *path])
            report.problem(
                where,
                f"unknown subcommand {name!r} of `{prefix}` (known: {', '.join(sorted(known))})",
            )
            return
        command = known[name]
        path.append(name)
        rest = rest[1:]
    if _subcommands(command):
        report.problem(where, f"`{' '.join(['puente', *path])}` needs a subcommand")
        return
    accepted = _option_names(command)
    options = {word.split("=", 1)[0] for word in rest if re.match(r"--?[A-Za-z]", word)}
    unknown = sorted(options - accepted)
    for option in unknown:
        report.problem(
            where,
            f"`{' '.join(['puente', *path])}` has no option {option!r} "
            f"(accepted: {', '.join(sorted(accepted))})",
        )
    # Wide and plain, so that typer's error box does not wrap the message it carries.
    result = CliRunner().invoke(
        app, [*path, *rest, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}
    )
    if result.exit_code == 0:
        report.commands.append(" ".join(["puente", *path, *rest]))
    elif not unknown:  # refused for another reason: a missing value, a stray argument
        report.problem(
            where,
            f"`{' '.join(['puente', *path, *rest])}` is refused (exit {result.exit_code}): "
            + _error_text(result.output),
        )


def _error_text(output: str) -> str:
    """Click's error message without typer's box, usage and hint lines."""
    lines = (line.strip(" │╭╮╰╯─") for line in output.splitlines())
    noise = ("Usage:", "Try ", "Error")
    return " ".join(line for line in lines if line and not line.startswith(noise))


def _puente_args(argv: list[str]) -> list[str] | None:
    """The arguments after the `puente` executable, or None if it is not invoked."""
    for position, token in enumerate(argv):
        if Path(token).name == "puente":
            return argv[position + 1 :]
    return None


# -- services ------------------------------------------------------------------------------


def _environment(service: dict[str, Any]) -> list[str]:
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return [str(key) for key in env]
    return [str(item).split("=", 1)[0] for item in env]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return {str(name): "service_started" for name in depends}
    return {
        str(name): str((spec or {}).get("condition", "service_started"))
        for name, spec in depends.items()
    }


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    if not isinstance(check, dict) or check.get("disable"):
        return False
    test = check.get("test")
    return bool(test) and test != ["NONE"]


def _dockerfile_cmd(dockerfile: Path) -> list[str] | None:
    """The exec-form CMD of the last stage, if any."""
    cmd: list[str] | None = None
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*CMD\s+(\[.*\])\s*$", line)
        if match:
            cmd = [str(item) for item in json.loads(match.group(1))]
    return cmd


def check_build(name: str, service: dict[str, Any], base: Path, report: Report) -> Path | None:
    build = service.get("build")
    if build is None:
        if not service.get("image"):
            report.problem(f"services.{name}", "neither `image` nor `build`")
        return None
    spec = {"context": build} if isinstance(build, str) else dict(build)
    context = base / str(spec.get("context", "."))
    dockerfile = context / str(spec.get("dockerfile", "Dockerfile"))
    if not context.is_dir():
        report.problem(f"services.{name}.build", f"context {context} is not a directory")
        return None
    if not dockerfile.is_file():
        report.problem(f"services.{name}.build", f"Dockerfile {dockerfile} does not exist")
        return None
    return dockerfile


def _volume_source(entry: Any) -> str | None:
    """The host side of a service volume: a named volume or a bind path; None if anonymous."""
    if isinstance(entry, dict):
        source = entry.get("source")
        return str(source) if source else None
    parts = str(entry).split(":")
    return parts[0] if len(parts) > 1 else None


def check_volumes(
    name: str, service: dict[str, Any], declared: set[str], base: Path, report: Report
) -> None:
    for entry in service.get("volumes") or []:
        source = _volume_source(entry)
        if source is None or "$" in source:
            continue
        if source.startswith((".", "/", "~")):
            if source.startswith(".") and not (base / source).exists():
                report.problem(f"services.{name}.volumes", f"bind source {source} does not exist")
        elif source not in declared:
            report.problem(f"services.{name}.volumes", f"volume {source!r} is not declared")


def check_service(
    name: str, service: dict[str, Any], services: dict[str, Any], base: Path, report: Report
) -> None:
    where = f"services.{name}"
    dockerfile = check_build(name, service, base, report)
    argv = _argv(service.get("entrypoint")) + _argv(service.get("command"))
    if not argv and dockerfile is not None:
        argv = _dockerfile_cmd(dockerfile) or []
        where = f"{where} (Dockerfile CMD)"
    arguments = _puente_args(argv)
    if arguments is not None:
        check_puente_command(arguments, f"{where}.command", report)
    for variable in _environment(service):
        if variable.upper().startswith("PUENTE_"):
            if variable.upper() in SETTINGS:
                report.settings.add(variable.upper())
            else:
                report.problem(
                    f"{where}.environment", f"{variable} is not a setting of puente.settings"
                )
    for target, condition in _depends_on(service).items():
        if target not in services:
            report.problem(f"{where}.depends_on", f"no service named {target!r}")
        elif condition not in CONDITIONS:
            report.problem(f"{where}.depends_on.{target}", f"unknown condition {condition!r}")
        elif condition == "service_healthy" and not _has_healthcheck(services[target]):
            report.problem(
                f"{where}.depends_on.{target}", f"waits for {target} healthy; it has no healthcheck"
            )


def check(compose_file: Path) -> Report:
    report = Report()
    try:
        document = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        report.problem(str(compose_file), f"cannot be read as YAML: {exc}")
        return report
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict) or not services:
        report.problem(str(compose_file), "no services")
        return report
    for where, text in _strings(document, "compose", set()):
        for problem in interpolation_problems(text):
            report.problem(where.removeprefix("compose."), problem)
    declared = set((document.get("volumes") or {}).keys())
    base = compose_file.resolve().parent
    for name, service in services.items():
        if not isinstance(service, dict):
            report.problem(f"services.{name}", "is not a mapping")
            continue
        check_service(str(name), service, services, base, report)
        check_volumes(str(name), service, declared, base, report)
    return report


def main(argv: list[str]) -> int:
    compose_file = Path(argv[0]) if argv else ROOT / "compose.yaml"
    report = check(compose_file)
    if report.problems:
        print(f"{compose_file}: {len(report.problems)} problem(s)", file=sys.stderr)
        for problem in report.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{compose_file}: OK")
    for command in report.commands:
        print(f"  command  {command}")
    print(f"  settings {', '.join(sorted(report.settings))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
