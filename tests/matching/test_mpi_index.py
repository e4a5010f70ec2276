"""The MPI in the store's transaction: features and keys on every Patient write, one
matching task per transaction, and the link rules the task applies."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from exchange import store
from exchange.matching import review, service
from exchange.matching.models import (
    BlockKey,
    MatchLink,
    MatchLinkHistory,
    MatchRecord,
)
from exchange.matching.tasks import MATCH_TASK, match_task
from exchange.models import StoredResource
from puente import pgcopy
from puente.auth.caller import Caller
from puente.auth.scopes import Role, grant
from puente.tasks import pending
from tests.matching.mpi_fakes import Grades, install

COUNTRY = {"hgcj": "MX", "umcep": "US", "hmcj": "MX"}


@pytest.fixture
def grades(monkeypatch: pytest.MonkeyPatch) -> Grades:
    return install(monkeypatch)


def person(res_id: str, family: str = "Ramírez Anchondo", **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": res_id,
        "name": [{"family": family, "given": ["José", "Luis"]}],
        "gender": "male",
        "birthDate": "1985-04-12",
        **fields,
    }


def put(db: Session, res_id: str, **fields: Any) -> StoredResource:
    owner = res_id.split("-", maxsplit=1)[0]
    stored, _ = store.put(
        db, owner=owner, owner_country=COUNTRY[owner], resource=person(res_id, **fields)
    )
    return stored


def pk(db: Session, res_id: str) -> int:
    found = db.scalar(select(StoredResource.pk).where(StoredResource.res_id == res_id))
    assert found is not None
    return found


def link(db: Session, a: str, b: str) -> MatchLink:
    return db.scalars(
        select(MatchLink).where(
            MatchLink.left_pk == min(pk(db, a), pk(db, b)),
            MatchLink.right_pk == max(pk(db, a), pk(db, b)),
        )
    ).one()


def links_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(MatchLink)) or 0


def evaluate(db: Session, *res_ids: str) -> None:
    service.evaluate_many(db, pks=[pk(db, r) for r in res_ids])


def officer(org: str = "hgcj") -> Caller:
    role = Role.CONSENT_OFFICER
    return Caller(
        subject=f"officer@{org}",
        role=role,
        org_code=org,
        country=COUNTRY[org],
        scopes=grant(role, None),
    )


def test_a_patient_write_stores_features_and_keys_and_asks_for_matching(db: Session) -> None:
    stored = put(db, "hgcj-1")
    record = db.get(MatchRecord, stored.pk)
    assert record is not None
    assert record.owner == "hgcj"
    assert record.version == 1
    keys = set(db.scalars(select(BlockKey.key).where(BlockKey.resource_pk == stored.pk)))
    assert any(key.startswith("bd:") and "1985" in key for key in keys)
    assert pending(db)[-1] == (MATCH_TASK, ([stored.pk],))


def test_an_update_rewrites_the_keys_and_deletion_removes_them(db: Session) -> None:
    stored = put(db, "hgcj-1")
    put(db, "hgcj-1", birthDate="1990-01-02")
    record = db.get(MatchRecord, stored.pk)
    assert record is not None
    assert record.version == 2
    keys = set(db.scalars(select(BlockKey.key).where(BlockKey.resource_pk == stored.pk)))
    assert not any("1985" in key for key in keys)
    assert any("1990" in key for key in keys)
    store.delete_current(db, stored)
    assert db.get(MatchRecord, stored.pk) is None
    assert not list(db.scalars(select(BlockKey).where(BlockKey.resource_pk == stored.pk)))


def test_one_task_per_transaction_for_many_writes(db: Session) -> None:
    for n in range(3):
        put(db, f"hgcj-{n}")
    store.create_many(
        db,
        owner="umcep",
        owner_country="US",
        contents=[person(f"umcep-{n}") for n in range(4)]
        + [{"resourceType": "Organization", "id": "umcep-org", "name": "x"}],
        method="PUT",
    )
    tasks = [args for name, args in pending(db) if name == MATCH_TASK]
    assert len(tasks) == 1
    assert sorted(tasks[0][0]) == sorted(
        [pk(db, f"hgcj-{n}") for n in range(3)] + [pk(db, f"umcep-{n}") for n in range(4)]
    )
    assert db.get(MatchRecord, pk(db, "umcep-org")) is None


def test_bulk_created_patients_get_the_features_and_keys_of_one_by_one_writes(
    db: Session,
) -> None:
    # COPYed on PostgreSQL, inserted elsewhere: the rows are those of a single write
    fields: dict[str, Any] = {"telecom": [{"system": "phone", "value": "656 123 4567"}]}
    put(db, "umcep-one", **fields)
    store.create_many(
        db,
        owner="umcep",
        owner_country="US",
        contents=[person("umcep-bulk", **fields)],
        method="PUT",
    )

    def rows(res_id: str) -> tuple[Any, ...]:
        record = db.get(MatchRecord, pk(db, res_id))
        assert record is not None
        keys = db.scalars(
            select(BlockKey.key).where(BlockKey.resource_pk == record.resource_pk)
        ).all()
        features = {**record.features, "id": None}
        return record.owner, record.version, features, sorted(keys)

    one, bulk = rows("umcep-one"), rows("umcep-bulk")
    assert bulk[3]
    assert bulk == one


def test_certain_links_probable_waits_possible_is_kept(db: Session, grades: Grades) -> None:
    for res_id in ("hgcj-1", "umcep-1", "umcep-2", "umcep-3", "umcep-4"):
        put(db, res_id)
    grades.set("hgcj-1", "umcep-1", "certain")
    grades.set("hgcj-1", "umcep-2", "probable")
    grades.set("hgcj-1", "umcep-3", "possible")
    evaluate(db, "hgcj-1")
    assert link(db, "hgcj-1", "umcep-1").status == "linked"
    assert link(db, "hgcj-1", "umcep-1").decided_by == "matcher"
    assert link(db, "hgcj-1", "umcep-2").status == "review"
    assert link(db, "hgcj-1", "umcep-3").status == "possible"
    assert links_count(db) == 3  # certainly-not pairs are not stored
    history = db.scalars(
        select(MatchLinkHistory).where(MatchLinkHistory.link_id == link(db, "hgcj-1", "umcep-1").id)
    ).all()
    assert [(h.status, h.decided_by, h.left_version, h.right_version) for h in history] == [
        ("linked", "matcher", 1, 1)
    ]


def test_records_of_the_same_system_are_never_paired(db: Session, grades: Grades) -> None:
    put(db, "hgcj-1")
    put(db, "hgcj-2")
    grades.set("hgcj-1", "hgcj-2", "certain")
    evaluate(db, "hgcj-1", "hgcj-2")
    assert links_count(db) == 0


def test_two_certain_candidates_in_one_system_go_to_review(db: Session, grades: Grades) -> None:
    for res_id in ("hgcj-1", "umcep-1", "umcep-2"):
        put(db, res_id)
    grades.set("hgcj-1", "umcep-1", "certain")
    grades.set("hgcj-1", "umcep-2", "certain")
    evaluate(db, "hgcj-1")
    assert link(db, "hgcj-1", "umcep-1").status == "review"
    assert link(db, "hgcj-1", "umcep-2").status == "review"


def test_a_second_automatic_link_into_a_system_sends_both_to_review(
    db: Session, grades: Grades
) -> None:
    put(db, "hgcj-1")
    put(db, "umcep-1")
    grades.set("hgcj-1", "umcep-1", "certain")
    evaluate(db, "hgcj-1")
    assert link(db, "hgcj-1", "umcep-1").status == "linked"
    put(db, "hgcj-2")  # a duplicate registration at the same hospital
    grades.set("hgcj-2", "umcep-1", "certain")
    evaluate(db, "hgcj-2")
    assert link(db, "hgcj-2", "umcep-1").status == "review"
    assert link(db, "hgcj-1", "umcep-1").status == "review"
    reasons = db.scalars(
        select(MatchLinkHistory.reason).where(
            MatchLinkHistory.link_id == link(db, "hgcj-1", "umcep-1").id
        )
    ).all()
    assert list(reasons) == ["scored", "conflict"]


def test_links_into_two_other_systems_are_no_conflict(db: Session, grades: Grades) -> None:
    for res_id in ("umcep-1", "hgcj-1", "hmcj-1"):
        put(db, res_id)
    grades.set("umcep-1", "hgcj-1", "certain")
    grades.set("umcep-1", "hmcj-1", "certain")
    evaluate(db, "umcep-1")
    assert link(db, "umcep-1", "hgcj-1").status == "linked"
    assert link(db, "umcep-1", "hmcj-1").status == "linked"


def test_a_rejection_stands_until_a_record_changes(db: Session, grades: Grades) -> None:
    put(db, "hgcj-1")
    put(db, "umcep-1")
    grades.set("hgcj-1", "umcep-1", "probable")
    evaluate(db, "hgcj-1")
    pair = link(db, "hgcj-1", "umcep-1")
    review.reject(db, officer(), link_id=pair.id)
    grades.set("hgcj-1", "umcep-1", "certain")  # e.g. a new model rates it higher
    evaluate(db, "hgcj-1", "umcep-1")
    assert link(db, "hgcj-1", "umcep-1").status == "rejected"
    assert link(db, "hgcj-1", "umcep-1").decided_by == "consent-officer:officer@hgcj"
    put(db, "umcep-1", telecom=[{"system": "phone", "value": "+1 915 555 0101"}])
    evaluate(db, "umcep-1")
    again = link(db, "hgcj-1", "umcep-1")
    # Proposed again after the update, to a person: never linked over a steward's "no".
    assert (again.status, again.decided_by, again.right_version) == ("review", "matcher", 2)


def test_an_update_that_breaks_the_match_unlinks(db: Session, grades: Grades) -> None:
    put(db, "hgcj-1")
    put(db, "umcep-1")
    grades.set("hgcj-1", "umcep-1", "certain")
    evaluate(db, "hgcj-1")
    put(db, "umcep-1", birthDate="1961-01-01")
    grades.set("hgcj-1", "umcep-1", "certainly-not")
    evaluate(db, "umcep-1")
    assert link(db, "hgcj-1", "umcep-1").status == "unlinked"


def test_deletion_unlinks_and_a_gone_record_is_skipped(db: Session, grades: Grades) -> None:
    put(db, "hgcj-1")
    umcep = put(db, "umcep-1")
    grades.set("hgcj-1", "umcep-1", "certain")
    evaluate(db, "hgcj-1")
    store.delete_current(db, umcep)
    assert link(db, "hgcj-1", "umcep-1").status == "unlinked"
    service.evaluate_many(db, pks=[umcep.pk, 987654321])  # nothing to do, no error
    assert link(db, "hgcj-1", "umcep-1").status == "unlinked"


def test_evaluating_twice_changes_nothing(db: Session, grades: Grades) -> None:
    put(db, "hgcj-1")
    put(db, "umcep-1")
    grades.set("hgcj-1", "umcep-1", "certain")
    evaluate(db, "hgcj-1", "umcep-1", "hgcj-1")
    assert link(db, "hgcj-1", "umcep-1").status == "linked"
    assert db.scalar(select(func.count()).select_from(MatchLinkHistory)) == 1


def test_the_task_tolerates_records_that_are_gone() -> None:
    match_task([987654321, 987654322])  # its own transaction; nothing there, no error


def test_candidates_are_other_systems_records_only(db: Session) -> None:
    """One call for records of two systems: each gets the other systems' records that
    share its keys, never its own system's (those are not even read)."""
    for res_id in ("hgcj-c1", "hgcj-c2", "umcep-c1", "umcep-c2", "hmcj-c1"):
        put(db, res_id)
    put(db, "umcep-c3", family="Smith", birthDate="1950-01-01", gender="female")
    found = service.candidate_pks(db, [pk(db, "hgcj-c1"), pk(db, "umcep-c1")])
    others_of_hgcj = {pk(db, r) for r in ("umcep-c1", "umcep-c2", "hmcj-c1")}
    others_of_umcep = {pk(db, r) for r in ("hgcj-c1", "hgcj-c2", "hmcj-c1")}
    assert set(found[pk(db, "hgcj-c1")]) == others_of_hgcj
    assert set(found[pk(db, "umcep-c1")]) == others_of_umcep
    assert service.candidate_pks(db, [pk(db, "umcep-c3")]) == {}


def _keys(db: Session, record_pk: int) -> int:
    return db.scalar(select(func.count()).where(BlockKey.resource_pk == record_pk)) or 0


def test_a_blocking_key_naming_no_record_is_refused(db: Session, is_postgres: bool) -> None:
    """Migration 0012's triggers stand in for the foreign key: a key needs its record,
    whether inserted, moved or COPYed, and one bad key spoils the whole statement."""
    record = pk(db, put(db, "hgcj-keyed").res_id)
    missing = record + 1000
    before = _keys(db, record)
    rows = [
        {"resource_pk": record, "owner": "hgcj", "key": "zz:1"},
        {"resource_pk": missing, "owner": "hgcj", "key": "zz:2"},
    ]
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(insert(BlockKey), rows)
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(
            update(BlockKey).where(BlockKey.resource_pk == record).values(resource_pk=missing)
        )
    with pytest.raises(DBAPIError), db.begin_nested():
        db.execute(
            update(MatchRecord).where(MatchRecord.resource_pk == record).values(resource_pk=missing)
        )
    if is_postgres:
        columns = ("resource_pk", "owner", "key")
        with pytest.raises(psycopg.errors.ForeignKeyViolation), db.begin_nested():
            pgcopy.copy_rows(db, BlockKey.__tablename__, columns, [(missing, "hgcj", "zz:3")])
    assert _keys(db, record) == before > 0
    assert _keys(db, missing) == 0


def test_a_deleted_resource_takes_its_record_and_keys(db: Session) -> None:
    gone, kept = pk(db, put(db, "hgcj-gone").res_id), pk(db, put(db, "hgcj-kept").res_id)
    kept_keys = _keys(db, kept)
    assert _keys(db, gone) > 0
    db.execute(text("DELETE FROM resource WHERE pk = :pk"), {"pk": gone})
    assert db.get(MatchRecord, gone) is None
    assert _keys(db, gone) == 0
    assert _keys(db, kept) == kept_keys > 0
