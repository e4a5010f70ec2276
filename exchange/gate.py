"""The disclosure gate: which stored records a caller may see, on every path.

The rules are consent's (the pure engine `consent.engine.decide`, the jurisdiction policy
file, the Consents patients and officers wrote); this module asks them about the store's
rows and turns the answers into what the store's queries need:

- `clause(type)`: a SQL clause on `StoredResource` true exactly for the rows the caller
  may see, so that counts (`_total`), paging and `$match` never see a denied row;
- `permits(rows)`: the same answer for rows already fetched (read, includes);
- `versions_clause()`: the same for `ResourceVersion` rows (history);
- `withheld(...)`: whether records the caller could open by breaking the glass were left
  out (the `suppressed`/`BTG` OperationOutcome entry, never saying which);
- `disclosed(...)`: the audit row of records that crossed to another hospital.

Most of the answer is SQL: directory data, a hospital's own records, a patient's own
records on both sides (its compartment and its linked records'). Records of another
hospital can only be opened by a Consent of their patient or a break-the-glass grant, so
the engine is asked only about the records of the people whose active Consents could
permit this caller, or for whom it holds a grant (and, if the policy lets records cross
inside a country without consent, of that country): "candidates". Their decisions become
a list of pks in the clause. One gate per session and caller; a flush forgets it, so a
revocation takes effect for the next query.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    event,
    exists,
    false,
    func,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.orm import Session

from consent import breakglass
from consent import facts as consent_facts
from consent import service as labelling
from consent.codes import Label
from consent.engine import ConsentRules, Decision, Requester, decide, may_permit
from consent.parse import compile_rules
from consent.policy import Policy, active_policy
from exchange.matching import links as mpi_links
from exchange.models import PUENTE_OWNER, ReferenceIndex, ResourceVersion, StoredResource
from exchange.resources import DIRECTORY_TYPES
from puente.auth.caller import Caller
from puente.auth.scopes import Role
from puente.db import utcnow
from puente.fhir.sql import among_in
from translation.i18n import N_

# The references that put a resource in a patient's compartment (FHIR R4
# compartmentdefinition-patient: the parameters its types list, whatever the type).
COMPARTMENT_PARAMS = (
    "patient",
    "subject",
    "performer",
    "actor",
    "author",
    "asserter",
    "recorder",
    "requester",
    "beneficiary",
)
# The references that say whom a record is about (consent.facts.patient_of reads the
# same elements from the content): what makes another hospital's record a candidate.
_ABOUT_PARAMS = ("patient", "subject")
_SESSION_KEY = "puente.gates"
# How many withheld candidates `withheld` asks the engine about before it answers.
_WITHHELD_PROBE = 50


@dataclass(frozen=True, slots=True)
class Columns:
    """The columns of a table of stored rows (current resources or versions)."""

    pk: Any
    res_type: Any
    res_id: Any
    owner: Any


CURRENT = Columns(
    StoredResource.pk, StoredResource.res_type, StoredResource.res_id, StoredResource.owner
)
VERSIONS = Columns(
    ResourceVersion.resource_pk,
    ResourceVersion.res_type,
    ResourceVersion.res_id,
    ResourceVersion.owner,
)


@dataclass(frozen=True, slots=True)
class Row:
    """One stored row as the engine is asked about it."""

    pk: int
    version: int
    res_type: str
    res_id: str
    owner: str
    owner_country: str | None
    content: Mapping[str, Any] | None  # None: a deletion (the last live content decides)


class _Consents:
    """Every stored Consent compiled, kept per process until a Consent is written."""

    generation: tuple[Any, ...] | None = None
    rules: tuple[ConsentRules, ...] = ()


_CACHE = _Consents()


def _all_consents(session: Session) -> tuple[ConsentRules, ...]:
    generation = tuple(
        session.execute(
            select(
                func.count(),
                func.max(StoredResource.last_updated),
                func.sum(StoredResource.version),
            ).where(StoredResource.res_type == "Consent")
        ).one()
    )
    if generation != _CACHE.generation:
        contents = session.scalars(
            select(StoredResource.content).where(
                StoredResource.res_type == "Consent", StoredResource.deleted.is_(False)
            )
        )
        _CACHE.rules = tuple(compile_rules(c) for c in contents if c is not None)
        _CACHE.generation = generation
    return _CACHE.rules


def _forget(session: Session, *_: Any) -> None:
    session.info.pop(_SESSION_KEY, None)


event.listen(Session, "after_flush", _forget)
event.listen(Session, "after_rollback", _forget)


def gate_for(session: Session, caller: Caller) -> Gate:
    """The gate of `caller` in this session (built once until the session writes)."""
    gates: dict[Caller, Gate] = session.info.setdefault(_SESSION_KEY, {})
    found = gates.get(caller)
    if found is None:
        found = gates[caller] = Gate(session, caller)
    return found


def _labels_of(content: Mapping[str, Any]) -> frozenset[Label]:
    security = (content.get("meta") or {}).get("security") or ()
    return frozenset(
        Label(str(c.get("system") or ""), str(c.get("code") or ""))
        for c in security
        if isinstance(c, Mapping) and c.get("code")
    )


class Gate:
    def __init__(self, session: Session, caller: Caller, *, now: dt.datetime | None = None):
        self.session = session
        self.caller = caller
        self.now = now or utcnow()
        self.policy: Policy = active_policy()
        self.role = caller.role.value
        self.own = caller.org_code or ""
        # Whether anything of another hospital can reach this caller at all.
        self.crosses = bool(self.own) and self.role in self.policy.other_record_roles
        self._requester: Requester | None = None
        self._people: dict[str, frozenset[str]] | None = None
        self._by_patient: dict[str, list[ConsentRules]] | None = None
        self._clauses: dict[str, ColumnElement[bool]] = {}
        self._decided: dict[tuple[int, int], Decision] = {}
        self._own_people: frozenset[str] | None = None

    @property
    def sees_other_hospitals(self) -> bool:
        """Whether any record another hospital system holds can reach this caller."""
        return self.crosses or self.caller.role is Role.PATIENT

    # ---- who asks, and about whom ---------------------------------------------------------

    @property
    def requester(self) -> Requester:
        if self._requester is None:
            grants = breakglass.active_grants(
                self.session, self.caller, now=self.now, policy=self.policy
            )
            self._requester = consent_facts.requester_for(self.caller, break_glass=grants)
        return self._requester

    def _candidate_people(self) -> dict[str, frozenset[str]]:
        """Patient id -> the person's records, for every person whose records another
        hospital may disclose to this caller: an active Consent of theirs could permit
        it, or it holds a break-the-glass grant for them."""
        if self._people is None:
            requester = self.requester
            consents = _all_consents(self.session)
            seeds = {r.patient for r in consents if r.patient and may_permit(r, requester)}
            seeds |= {g.patient for g in requester.break_glass if g.expires > self.now}
            people = mpi_links.people(self.session, seeds)
            everyone = {p for records in people.values() for p in records}
            self._people = mpi_links.people(self.session, everyone)
        return self._people

    def _consents_about(self, patients: frozenset[str]) -> list[ConsentRules]:
        if self._by_patient is None:
            self._by_patient = {}
            for rules in _all_consents(self.session):
                if rules.active:
                    self._by_patient.setdefault(rules.patient, []).append(rules)
        return [c for p in sorted(patients) for c in self._by_patient.get(p, ())]

    def _own_patients(self) -> frozenset[str]:
        """For role patient: its Patient record and those linked to it."""
        if self._own_people is None:
            mine = self.requester.patient
            found = mpi_links.people(self.session, [mine]) if mine else {}
            self._own_people = found.get(mine or "", frozenset())
        return self._own_people

    def _domestic(self) -> bool:
        country = self.caller.country
        return bool(country) and self.requester.purpose in self.policy.domestic_without_consent.get(
            country or "", frozenset()
        )

    # ---- SQL ------------------------------------------------------------------------------

    def _about(self, cols: Columns, patients: Sequence[str], params: Sequence[str]) -> Any:
        return or_(
            and_(cols.res_type == "Patient", cols.res_id.in_(patients)),
            exists().where(
                ReferenceIndex.resource_pk == cols.pk,
                or_(ReferenceIndex.target_type == "Patient", ReferenceIndex.target_type.is_(None)),
                ReferenceIndex.target_id.in_(patients),
                ReferenceIndex.param.in_(params),
            ),
        )

    def base(self, cols: Columns, types: Collection[str] | None = None) -> ColumnElement[bool]:
        """What is decided without the engine: directory data; a hospital's own records to
        its own people; a patient's own records on both sides. `types`: the only types
        the clause will be asked about, when known."""
        directory: ColumnElement[bool] = cols.res_type.in_(DIRECTORY_TYPES)
        if self.role in self.policy.never_patient_data_roles:
            return directory
        if self.caller.role is Role.PATIENT:
            mine = sorted(self._own_patients()) if self.policy.patient_access else []
            if not mine:
                return directory
            return or_(directory, self._about(cols, mine, COMPARTMENT_PARAMS))
        if not self.own or self.role not in self.policy.own_record_roles:
            return directory
        if types is not None and "Consent" not in types:
            return or_(directory, cols.owner == self.own)
        return or_(directory, cols.owner == self.own, self._patients_own_consents(cols))

    def _patients_own_consents(self, cols: Columns) -> ColumnElement[bool]:
        """The Consents the hospital's patients wrote themselves (owned by `puente`): part
        of the hospital's record of them, for its officers to manage and its people to
        honour."""
        own_patients = select(StoredResource.res_id).where(
            StoredResource.res_type == "Patient", StoredResource.owner == self.own
        )
        return and_(
            cols.res_type == "Consent",
            cols.owner == PUENTE_OWNER,
            exists().where(
                ReferenceIndex.resource_pk == cols.pk,
                ReferenceIndex.param == "patient",
                or_(ReferenceIndex.target_type == "Patient", ReferenceIndex.target_type.is_(None)),
                ReferenceIndex.target_id.in_(own_patients),
            ),
        )

    def _candidates(self, cols: Columns) -> ColumnElement[bool] | None:
        """Another hospital's rows the engine must be asked about; None: there are none."""
        if not self.crosses:
            return None
        people = self._candidate_people()
        about = sorted({p for records in people.values() for p in records})
        alternatives: list[ColumnElement[bool]] = []
        if about:
            alternatives.append(self._about(cols, about, _ABOUT_PARAMS))
        if self._domestic():
            alternatives.append(
                cols.owner.in_(
                    select(StoredResource.owner)
                    .where(StoredResource.owner_country == self.caller.country)
                    .distinct()
                    .scalar_subquery()
                )
            )
        if not alternatives:
            return None
        return and_(cols.owner != self.own, ~cols.res_type.in_(DIRECTORY_TYPES), or_(*alternatives))

    def superset(self, resource_type: str) -> ColumnElement[bool]:
        """A clause true for every row the caller may see and some it may not (the engine
        not asked): for rows fetched and then passed through `permits`."""
        if resource_type in DIRECTORY_TYPES:
            return true()
        candidates = self._candidates(CURRENT)
        base = self.base(CURRENT, [resource_type])
        return base if candidates is None else or_(base, candidates)

    def clause(
        self, resource_type: str, *, within: ColumnElement[bool] | None = None
    ) -> ColumnElement[bool]:
        """Exactly the current rows of `resource_type` the caller may see, as a clause on
        `StoredResource`. `within` narrows the rows the engine is asked about (a search's
        criteria); the clause is then exact only inside it."""
        if resource_type in DIRECTORY_TYPES:
            return true()
        if within is None and resource_type in self._clauses:
            return self._clauses[resource_type]
        found = self._allowed([resource_type], within)
        if within is None:
            self._clauses[resource_type] = found
        return found

    def clause_of(
        self, resource_types: Iterable[str], *, within: ColumnElement[bool]
    ) -> ColumnElement[bool]:
        """Exactly the current rows of any of `resource_types` inside `within` the caller
        may see: `clause` for several types at once (`$everything`), the engine asked
        about all their rows in one batch."""
        types = sorted(set(resource_types))
        directory = [t for t in types if t in DIRECTORY_TYPES]
        others = [t for t in types if t not in DIRECTORY_TYPES]
        found: list[ColumnElement[bool]] = []
        if directory:
            found.append(StoredResource.res_type.in_(directory))
        if others:
            found.append(and_(StoredResource.res_type.in_(others), self._allowed(others, within)))
        return or_(false(), *found)

    def _allowed(
        self, resource_types: Sequence[str], within: ColumnElement[bool] | None
    ) -> ColumnElement[bool]:
        """The clause for rows of `resource_types` (none a directory type): the base, and
        the candidates inside `within` the engine permits, by pk."""
        base = self.base(CURRENT, resource_types)
        candidates = self._candidates(CURRENT)
        if candidates is None:
            return base
        statement = select(*_ROW_COLUMNS).where(
            StoredResource.res_type.in_(resource_types),
            StoredResource.deleted.is_(False),
            candidates,
        )
        if within is not None:
            statement = statement.where(within)
        # Columns, not ORM objects: only the engine reads them (a third of the time for
        # the 250 rows of a `$everything`).
        rows = [Row(*r) for r in self.session.execute(statement)]
        decisions = self._decide_rows(rows)  # one batch: labels and links looked up once
        allowed = [r.pk for r, d in zip(rows, decisions, strict=True) if d.permit]
        if not allowed:
            return base
        return or_(base, among_in(self.session, StoredResource.pk, allowed))

    def versions_clause(self, within: ColumnElement[bool]) -> ColumnElement[bool]:
        """Exactly the versions (ResourceVersion rows, inside `within`) the caller may
        see: each version decided on its own content and labels."""
        base = self.base(VERSIONS)
        candidates = self._candidates(VERSIONS)
        if candidates is None:
            return base
        found = self.session.scalars(
            select(ResourceVersion)
            .where(within, candidates)
            .order_by(ResourceVersion.resource_pk, ResourceVersion.version)
        ).all()
        rows = self._version_rows(found)
        decisions = self._decide_rows(rows)
        allowed = [(r.pk, r.version) for r, d in zip(rows, decisions, strict=True) if d.permit]
        if not allowed:
            return base
        return or_(base, tuple_(ResourceVersion.resource_pk, ResourceVersion.version).in_(allowed))

    # ---- rows already fetched -------------------------------------------------------------

    def permits(self, rows: Sequence[StoredResource]) -> list[bool]:
        """For each current row: may the caller see it?"""
        return self._permits([_row(r) for r in rows], CURRENT)

    def permits_versions(self, rows: Sequence[ResourceVersion]) -> list[bool]:
        return self._permits(self._version_rows(rows), VERSIONS)

    def _permits(self, rows: list[Row], cols: Columns) -> list[bool]:
        answers: dict[int, bool] = {}
        pending: list[Row] = []
        in_base: list[Row] = []
        for row in rows:
            if row.res_type in DIRECTORY_TYPES:
                answers[id(row)] = True
            elif self.caller.role is not Role.PATIENT and self.role not in (
                self.policy.never_patient_data_roles
            ):
                if row.owner == self.own and self.role in self.policy.own_record_roles:
                    answers[id(row)] = True
                elif row.owner == PUENTE_OWNER and row.res_type == "Consent":
                    in_base.append(row)
                else:
                    pending.append(row)
            else:
                in_base.append(row)
        if in_base:
            # Decided by `base` alone (a patient's own records; a patient's own Consents).
            pks = sorted({r.pk for r in in_base})
            inside = set(
                self.session.scalars(select(cols.pk).where(cols.pk.in_(pks), self.base(cols)))
            )
            for row in in_base:
                answers[id(row)] = row.pk in inside
                if not answers[id(row)] and self.caller.role is not Role.PATIENT:
                    pending.append(row)
        if pending and self.crosses:
            for row, decision in zip(pending, self._decide_rows(pending), strict=True):
                answers[id(row)] = decision.permit
        return [answers.get(id(row), False) for row in rows]

    def decision(self, pk: int, version: int) -> Decision | None:
        """The engine's decision about a row it was asked about in this request."""
        return self._decided.get((pk, version))

    # ---- the engine -----------------------------------------------------------------------

    def _version_rows(self, versions: Sequence[ResourceVersion]) -> list[Row]:
        """Rows for versions; a deletion takes the content of the version before it."""
        pks = sorted({v.resource_pk for v in versions})
        countries = dict(
            self.session.execute(
                select(StoredResource.pk, StoredResource.owner_country).where(
                    StoredResource.pk.in_(pks)
                )
            ).all()
        )
        previous: dict[tuple[int, int], Mapping[str, Any] | None] = {}
        deletions = [v for v in versions if v.content is None]
        if deletions:
            earlier = self.session.execute(
                select(
                    ResourceVersion.resource_pk, ResourceVersion.version, ResourceVersion.content
                )
                .where(ResourceVersion.resource_pk.in_(sorted({v.resource_pk for v in deletions})))
                .order_by(ResourceVersion.resource_pk, ResourceVersion.version)
            ).all()
            last: dict[int, Mapping[str, Any] | None] = {}
            for pk, version, content in earlier:
                previous[(pk, version)] = last.get(pk)
                if content is not None:
                    last[pk] = content
        return [
            Row(
                v.resource_pk,
                v.version,
                v.res_type,
                v.res_id,
                v.owner,
                countries.get(v.resource_pk),
                v.content if v.content is not None else previous.get((v.resource_pk, v.version)),
            )
            for v in versions
        ]

    def _decide_rows(self, rows: Sequence[Row]) -> list[Decision]:
        todo = [r for r in rows if (r.pk, r.version) not in self._decided]
        if todo:
            live = [r for r in todo if r.content is not None]
            contents = labelling.versions_labelled(
                self.session, [(r.pk, r.version, dict(r.content or {})) for r in live]
            )
            shown = {(r.pk, r.version): c for r, c in zip(live, contents, strict=True)}
            about = {
                consent_facts.patient_of(c)
                for c in shown.values()
                if consent_facts.patient_of(c) is not None
            }
            people = self._people_of({a for a in about if a})
            requester = self.requester
            for row in todo:
                content = shown.get((row.pk, row.version))
                if content is None:  # a deletion of nothing we know: deny
                    self._decided[(row.pk, row.version)] = _NOTHING
                    continue
                patient = consent_facts.patient_of(content)
                patients = people.get(patient, frozenset({patient})) if patient else frozenset()
                facts = consent_facts.record_facts(
                    content,
                    owner=row.owner,
                    owner_country=row.owner_country,
                    labels=_labels_of(content),
                    patients=patients,
                )
                consents = self._consents_about(patients)
                self._decided[(row.pk, row.version)] = decide(
                    requester, facts, consents, self.policy, now=self.now
                )
        return [self._decided[(r.pk, r.version)] for r in rows]

    def _people_of(self, patients: set[str]) -> dict[str, frozenset[str]]:
        known = self._candidate_people() if self.crosses else {}
        missing = {p for p in patients if p not in known}
        if not missing:
            return known
        return {**known, **mpi_links.people(self.session, missing)}

    # ---- what the response says -----------------------------------------------------------

    def withheld(
        self,
        resource_type: str | None,
        within: ColumnElement[bool],
        *,
        visible: ColumnElement[bool],
    ) -> bool:
        """Whether rows of `resource_type` (None: of any type) inside `within` were left
        out (`visible` is the gate's clause there) that a break-the-glass by this caller
        would open (engine: `btg_possible`). Asked of a bounded sample of another
        hospital's records."""
        if self.role not in self.policy.btg_roles or not self.own:
            return False
        of_type = true() if resource_type is None else StoredResource.res_type == resource_type
        statement = (
            select(StoredResource)
            .where(
                of_type,
                StoredResource.deleted.is_(False),
                StoredResource.owner != self.own,
                StoredResource.owner != PUENTE_OWNER,
                within,
                ~visible,
            )
            .order_by(StoredResource.pk)
            .limit(_WITHHELD_PROBE)
        )
        rows = [_row(r) for r in self.session.scalars(statement)]
        return any(d.btg_possible for d in self._decide_rows(rows))

    def disclosures(
        self, rows: Iterable[tuple[int, int, Mapping[str, Any]]]
    ) -> tuple[list[str], list[str], bool]:
        """Of shown (pk, version, content): the references that crossed to the caller from
        another hospital, the Patients they are about, and whether break-the-glass opened
        any."""
        entities: list[str] = []
        patients: list[str] = []
        glass = False
        for pk, version, content in rows:
            decision = self._decided.get((pk, version))
            if decision is None or not decision.permit or decision.rule == "directory":
                continue
            entities.append(f"{content.get('resourceType')}/{content.get('id')}")
            about = consent_facts.patient_of(content)
            if about:
                patients.append(f"Patient/{about}")
            glass = glass or decision.rule in ("break-the-glass", "part2-emergency")
        return entities, list(dict.fromkeys(patients)), glass


_NOTHING = Decision(False, "no-content", N_("consent.rule.no_consent"))


_ROW_COLUMNS = (
    StoredResource.pk,
    StoredResource.version,
    StoredResource.res_type,
    StoredResource.res_id,
    StoredResource.owner,
    StoredResource.owner_country,
    StoredResource.content,
)


def _row(stored: StoredResource) -> Row:
    return Row(
        stored.pk,
        stored.version,
        stored.res_type,
        stored.res_id,
        stored.owner,
        stored.owner_country,
        stored.content,
    )
