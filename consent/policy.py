"""Jurisdiction policies: a TOML settings file, validated, compiled for the engine.

`policies/default.toml` is the shipped policy (DOMAIN.md, "Law and policy"); an operator
may point the integrator's `PUENTE_CONSENT_POLICY` setting at another file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from consent.codes import KNOWN_LABEL_CODES, PURPOSES, Label
from consent.errors import InvalidPolicy
from puente.auth.scopes import Role
from translation.i18n import N_
from translation.i18n import gettext as translate

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.toml"


def _purpose(code: str) -> str:
    if code not in PURPOSES:
        raise ValueError(f"{code!r} is not a purpose of use (v3-ActReason)")
    return code


Purpose = Annotated[str, AfterValidator(_purpose)]
# The notices the shipped policy names (marked here so that the catalogs carry them).
SHIPPED_NOTICES = (
    N_("consent.notice.part2_redisclosure"),
    N_("consent.notice.part2_consent_summary"),
    N_("consent.notice.break_the_glass"),
)


def _translated(key: str) -> str:
    if translate("en_US", key) == key:
        raise ValueError(f"{key!r} is not a message key of the catalogs")
    return key


MessageKey = Annotated[str, Field(pattern=r"^[a-z_]+(\.[a-z0-9_]+)+$"), AfterValidator(_translated)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RolesSection(_Strict):
    own_records: list[Role]
    other_records: list[Role]
    patient_access: bool
    never_patient_data: list[Role]

    @model_validator(mode="after")
    def _no_overlap(self) -> RolesSection:
        both = set(self.never_patient_data) & (set(self.own_records) | set(self.other_records))
        if both:
            raise ValueError(
                f"roles {sorted(both)} are both in never_patient_data and allowed records"
            )
        return self


class DisclosureSection(_Strict):
    purposes: list[Purpose]
    domestic_without_consent: dict[Literal["MX", "US"], list[Purpose]]
    directory_types: list[Annotated[str, Field(pattern=r"^[A-Z][A-Za-z]+$")]]


class LabelsSection(_Strict):
    sensitive: dict[str, list[str]]

    @model_validator(mode="after")
    def _known_codes(self) -> LabelsSection:
        for system, codes in self.sensitive.items():
            known = KNOWN_LABEL_CODES.get(system)
            if known is None:
                raise ValueError(f"unknown security label system {system!r}")
            unknown = sorted(set(codes) - known)
            if unknown:
                raise ValueError(f"unknown codes {unknown} in {system}")
        return self


class Part2Section(_Strict):
    named_hospital_required: bool
    named_source_required: bool
    emergency_rule: bool
    notice_key: MessageKey
    summary_key: MessageKey


class BreakTheGlassSection(_Strict):
    roles: list[Role]
    purpose: Purpose
    duration_minutes: int = Field(ge=1)
    max_duration_minutes: int = Field(ge=1)
    notice_key: MessageKey

    @model_validator(mode="after")
    def _bounded(self) -> BreakTheGlassSection:
        if self.duration_minutes > self.max_duration_minutes:
            raise ValueError("duration_minutes is longer than max_duration_minutes")
        return self


class PolicyFile(_Strict):
    """The file's layout; `policies/default.toml` documents each setting."""

    version: Literal[1]
    name: str = Field(min_length=1)
    roles: RolesSection
    disclosure: DisclosureSection
    labels: LabelsSection
    part2: Part2Section
    break_the_glass: BreakTheGlassSection


@dataclass(frozen=True, slots=True)
class Policy:
    """A policy as the engine reads it: sets, so each rule is one membership test."""

    name: str
    own_record_roles: frozenset[str]
    other_record_roles: frozenset[str]
    patient_access: bool
    never_patient_data_roles: frozenset[str]
    purposes: frozenset[str]
    domestic_without_consent: dict[str, frozenset[str]]
    directory_types: frozenset[str]
    sensitive_labels: frozenset[Label]
    part2_named_hospital_required: bool
    part2_named_source_required: bool
    part2_emergency_rule: bool
    part2_notice_key: str
    part2_summary_key: str
    btg_roles: frozenset[str]
    btg_purpose: str
    btg_duration_minutes: int
    btg_max_duration_minutes: int
    btg_notice_key: str

    @classmethod
    def from_file(cls, spec: PolicyFile) -> Policy:
        return cls(
            name=spec.name,
            own_record_roles=frozenset(spec.roles.own_records),
            other_record_roles=frozenset(spec.roles.other_records),
            patient_access=spec.roles.patient_access,
            never_patient_data_roles=frozenset(spec.roles.never_patient_data),
            purposes=frozenset(spec.disclosure.purposes),
            domestic_without_consent={
                country: frozenset(purposes)
                for country, purposes in spec.disclosure.domestic_without_consent.items()
            },
            directory_types=frozenset(spec.disclosure.directory_types),
            sensitive_labels=frozenset(
                Label(system, code)
                for system, codes in spec.labels.sensitive.items()
                for code in codes
            ),
            part2_named_hospital_required=spec.part2.named_hospital_required,
            part2_named_source_required=spec.part2.named_source_required,
            part2_emergency_rule=spec.part2.emergency_rule,
            part2_notice_key=spec.part2.notice_key,
            part2_summary_key=spec.part2.summary_key,
            btg_roles=frozenset(spec.break_the_glass.roles),
            btg_purpose=spec.break_the_glass.purpose,
            btg_duration_minutes=spec.break_the_glass.duration_minutes,
            btg_max_duration_minutes=spec.break_the_glass.max_duration_minutes,
            btg_notice_key=spec.break_the_glass.notice_key,
        )


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(file)"


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """A policy from TOML text, or InvalidPolicy naming `source` and every bad setting."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidPolicy(f"consent policy {source}: not valid TOML ({exc})") from exc
    try:
        spec = PolicyFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(tuple(error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidPolicy(f"consent policy {source}: {problems}") from exc
    return Policy.from_file(spec)


def load_policy(path: Path | str | None = None) -> Policy:
    """The policy in `path` (the shipped default without one)."""
    file = Path(path) if path is not None else DEFAULT_POLICY
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidPolicy(f"consent policy {file}: cannot be read ({exc.strerror})") from exc
    return parse_policy(text, source=str(file))


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    return load_policy()


@lru_cache(maxsize=4)
def _policy_at(path: str) -> Policy:
    return load_policy(path)


def active_policy() -> Policy:
    """The policy the gate applies: `PUENTE_CONSENT_POLICY`, else the shipped default."""
    from puente.settings import get_settings

    path = get_settings().consent_policy
    return default_policy() if path is None else _policy_at(str(path))
