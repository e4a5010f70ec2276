"""Security labels on ingest: computed at write time, kept beside the resource, merged into
`meta.security` on output, recomputed by a relabel that writes no version."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from consent import service as labelling
from consent.codes import ACT_CODE, CONFIDENTIALITY, ICD10, ICD10_CM
from consent.labels import LISTS, compile_lists
from consent.tasks import relabel_stale
from exchange import store
from exchange.models import ResourceVersion, StoredResource
from puente.auth import service as auth
from puente.cli import app
from puente.db import session_factory, utcnow
from tests.factories import bearer, fhir_json

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
SNOMED = "http://snomed.info/sct"
runner = CliRunner()


def _condition(res_id: str, system: str, code: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": res_id,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": system, "code": code}]},
        **fields,
    }


def _security(resource: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in resource.get("meta", {}).get("security", [])}


def _versions(session: Session, pk: int) -> int:
    count = session.scalar(
        select(func.count()).select_from(ResourceVersion).where(ResourceVersion.resource_pk == pk)
    )
    return int(count or 0)


def _labels(session: Session, stored: StoredResource) -> set[tuple[str, str]]:
    return {
        (c["system"], c["code"])
        for c in labelling.labels_of(session, [stored.pk]).get(stored.pk, [])
    }


HIV = (ACT_CODE, "HIV")
PART2 = {(ACT_CODE, "42CFRPart2"), (ACT_CODE, "NORDSCLCD")}


def test_hiv_condition_is_labelled_by_each_hospitals_code_system(client: TestClient) -> None:
    us = client.put(
        "/fhir/Condition/umcep-c1",
        json=_condition("umcep-c1", ICD10_CM, "B20"),
        headers={**UMCEP, **fhir_json()},
    )
    mx = client.post(
        "/fhir/Condition", json=_condition("x", ICD10, "B20.1"), headers={**HGCJ, **fhir_json()}
    )
    assert us.status_code == 201, us.text
    assert mx.status_code == 201, mx.text
    assert HIV in _security(us.json())  # the write's response shows it too
    mx_id = mx.json()["id"]
    read = client.get(f"/fhir/Condition/{mx_id}", headers=HGCJ).json()
    assert HIV in _security(read)
    assert read["meta"]["versionId"] == "1"
    found = client.get("/fhir/Condition", headers=UMCEP).json()
    assert [HIV in _security(e["resource"]) for e in found["entry"]] == [True]
    history = client.get(f"/fhir/Condition/{mx_id}/_history", headers=HGCJ).json()
    assert HIV in _security(history["entry"][0]["resource"])
    vread = client.get(f"/fhir/Condition/{mx_id}/_history/1", headers=HGCJ).json()
    assert HIV in _security(vread)


def test_update_to_a_plain_code_drops_the_label_but_the_old_version_keeps_it(
    client: TestClient,
) -> None:
    url = "/fhir/Condition/hgcj-c2"
    headers = {**HGCJ, **fhir_json()}
    client.put(url, json=_condition("hgcj-c2", ICD10, "B20"), headers=headers)
    updated = client.put(url, json=_condition("hgcj-c2", ICD10, "J45"), headers=headers)
    assert updated.status_code == 200
    assert HIV not in _security(updated.json())
    assert HIV not in _security(client.get(url, headers=HGCJ).json())
    assert HIV in _security(client.get(f"{url}/_history/1", headers=HGCJ).json())
    assert HIV not in _security(client.get(f"{url}/_history/2", headers=HGCJ).json())


def test_sender_labels_are_kept_once(db: Session) -> None:
    sent = [{"system": CONFIDENTIALITY, "code": "R"}, {"system": ACT_CODE, "code": "HIV"}]
    stored, _ = store.put(
        db,
        owner="hgcj",
        owner_country="MX",
        resource=_condition("hgcj-c3", ICD10, "B20", meta={"security": sent}),
    )
    assert _labels(db, stored) == {(CONFIDENTIALITY, "R"), HIV}
    (shown,) = labelling.labelled(db, [(stored.pk, stored.content or {})])
    codings = [(c["system"], c["code"]) for c in shown["meta"]["security"]]
    assert sorted(codings) == sorted({(CONFIDENTIALITY, "R"), HIV})


def test_a_patients_labels_are_its_senders_whatever_is_stored(db: Session) -> None:
    # A Patient's page skips the label lookup: its stored labels are the sender's only.
    sent = [{"system": CONFIDENTIALITY, "code": "R"}]
    patient = {"resourceType": "Patient", "id": "hgcj-p9", "meta": {"security": sent}}
    stored, _ = store.put(db, owner="hgcj", owner_country="MX", resource=patient)
    assert _labels(db, stored) == {(CONFIDENTIALITY, "R")}
    (shown,) = labelling.labelled(db, [(stored.pk, stored.content or {})])
    assert [(c["system"], c["code"]) for c in shown["meta"]["security"]] == [(CONFIDENTIALITY, "R")]


def _encounter(res_id: str, provider: str, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": res_id,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "serviceProvider": {"reference": provider},
        **fields,
    }


def test_part2_follows_the_registered_program_never_the_diagnosis(db: Session) -> None:
    labelling.add_part2_program(
        db, owner="umcep", reference="Organization/umcep-adapt", actor="test", now=utcnow()
    )
    program, _ = store.put(
        db,
        owner="umcep",
        owner_country="US",
        resource=_encounter("umcep-e1", "Organization/umcep-adapt"),
    )
    clinic, _ = store.put(
        db, owner="umcep", owner_country="US", resource=_encounter("umcep-e2", "Organization/umcep")
    )
    # the same Organization id sent by another hospital system is not that program
    other, _ = store.put(
        db,
        owner="hgcj",
        owner_country="MX",
        resource=_encounter("hgcj-e1", "Organization/umcep-adapt"),
    )
    diagnosed, _ = store.put(
        db,
        owner="umcep",
        owner_country="US",
        resource=_condition(
            "umcep-c4", ICD10_CM, "F10.20", encounter={"reference": "Encounter/umcep-e2"}
        ),
    )
    within, _ = store.put(
        db,
        owner="umcep",
        owner_country="US",
        resource=_condition(
            "umcep-c5", SNOMED, "38341003", encounter={"reference": "Encounter/umcep-e1"}
        ),
    )
    assert _labels(db, program) >= PART2
    assert not PART2 & _labels(db, clinic)
    assert not PART2 & _labels(db, other)
    assert (ACT_CODE, "ETH") in _labels(db, diagnosed)
    assert not PART2 & _labels(db, diagnosed)  # a substance-use code alone: ETH only
    assert _labels(db, within) >= PART2  # a Condition of the program's Encounter


def test_relabel_after_a_list_change_updates_labels_without_a_version(db: Session) -> None:
    asthma, _ = store.put(
        db, owner="hgcj", owner_country="MX", resource=_condition("hgcj-c6", ICD10, "J45")
    )
    hiv, _ = store.put(
        db, owner="hgcj", owner_country="MX", resource=_condition("hgcj-c7", ICD10, "B20")
    )
    assert _labels(db, asthma) == set()
    text = LISTS.read_text(encoding="utf-8")
    changed = compile_lists(text + f'{ICD10},J45,,prefix,PSY,include,"test row"\n')
    assert labelling.relabel(db, lists=changed) == 2  # both were labelled by another version
    assert _labels(db, asthma) == {(ACT_CODE, "PSY")}
    assert _labels(db, hiv) == {HIV}
    assert (_versions(db, asthma.pk), _versions(db, hiv.pk)) == (1, 1)
    assert (asthma.version, hiv.version) == (1, 1)
    assert labelling.relabel(db, lists=changed) == 0  # idempotent
    assert labelling.relabel(db) == 2  # back to the shipped lists
    assert _labels(db, asthma) == set()


def test_delete_removes_the_labels(db: Session) -> None:
    stored, _ = store.put(
        db, owner="hgcj", owner_country="MX", resource=_condition("hgcj-c8", ICD10, "B20")
    )
    assert store.delete_current(db, stored)
    assert labelling.labels_of(db, [stored.pk]) == {}


def test_import_path_labels_too(db: Session) -> None:
    store.create_many(
        db,
        owner="hgcj",
        owner_country="MX",
        contents=[_condition("hgcj-c9", ICD10, "B20"), _condition("hgcj-c10", ICD10, "J45")],
        method="PUT",
    )
    loaded = store.load_many(db, [("Condition", "hgcj-c9"), ("Condition", "hgcj-c10")])
    assert _labels(db, loaded[("Condition", "hgcj-c9")]) == {HIV}
    assert _labels(db, loaded[("Condition", "hgcj-c10")]) == set()
    assert labelling.stale_pks(db, after=0, limit=10) == []


def test_relabel_task_and_cli_recompute_stale_labels_in_batches(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {**HGCJ, **fhir_json()}
    for n in range(3):
        code = "J45" if n else "B20"
        client.put(
            f"/fhir/Condition/hgcj-r{n}",
            json=_condition(f"hgcj-r{n}", ICD10, code),
            headers=headers,
        )
    changed = compile_lists(
        LISTS.read_text(encoding="utf-8") + f'{ICD10},J45,,prefix,PSY,include,"test row"\n'
    )
    monkeypatch.setattr(labelling, "shipped_lists", lambda: changed)
    monkeypatch.setattr(labelling, "lists_version", lambda: changed.version)
    assert relabel_stale(batch=2) == 3
    assert relabel_stale(batch=2) == 0
    read = client.get("/fhir/Condition/hgcj-r1", headers=HGCJ).json()
    assert (ACT_CODE, "PSY") in _security(read)
    assert read["meta"]["versionId"] == "1"
    assert client.get("/fhir/Condition/hgcj-r1/_history", headers=HGCJ).json()["total"] == 1
    monkeypatch.undo()
    result = runner.invoke(app, ["consent", "relabel", "--batch", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("relabelled 3 resources")
    assert (ACT_CODE, "PSY") not in _security(
        client.get("/fhir/Condition/hgcj-r1", headers=HGCJ).json()
    )


def test_cli_marks_a_part2_program_and_relabels_what_it_already_sent(client: TestClient) -> None:
    with session_factory()() as session:
        auth.add_system(session, code="umcep", name="UMC", country="US")
        session.commit()
    encounter = _encounter("umcep-e9", "HealthcareService/umcep-sud")
    client.put("/fhir/Encounter/umcep-e9", json=encounter, headers={**UMCEP, **fhir_json()})
    assert not PART2 & _security(client.get("/fhir/Encounter/umcep-e9", headers=UMCEP).json())
    bad = runner.invoke(app, ["consent", "part2", "add", "Patient/x", "--system", "umcep"])
    assert bad.exit_code == 2
    unknown = runner.invoke(
        app, ["consent", "part2", "add", "HealthcareService/umcep-sud", "--system", "nope"]
    )
    assert unknown.exit_code == 2
    args = ["consent", "part2", "add", "HealthcareService/umcep-sud", "--system", "umcep"]
    added = runner.invoke(app, args)
    assert added.exit_code == 0, added.output
    assert "relabelled 1 resources" in added.output
    shown = client.get("/fhir/Encounter/umcep-e9", headers=UMCEP).json()
    assert _security(shown) >= PART2
    assert shown["meta"]["versionId"] == "1"
    assert "already" in runner.invoke(app, args).output


def test_search_by_security_label(client: TestClient) -> None:
    """`_security` finds records by the labels `meta.security` shows: computed ones and
    the sender's own, by system|code or code alone, with :not and :missing."""
    headers = {**UMCEP, **fhir_json()}
    restricted = {"system": CONFIDENTIALITY, "code": "R"}
    for resource in (
        _condition("umcep-hiv", ICD10_CM, "B20"),
        _condition("umcep-asthma", ICD10_CM, "J45.909"),
        _condition("umcep-marked", ICD10_CM, "J45.909", meta={"security": [restricted]}),
    ):
        written = client.put(f"/fhir/Condition/{resource['id']}", json=resource, headers=headers)
        assert written.status_code == 201, written.text

    def ids(query: str) -> list[str]:
        found = client.get(f"/fhir/Condition?{query}", headers=UMCEP)
        assert found.status_code == 200, found.text
        return sorted(e["resource"]["id"] for e in found.json().get("entry", []))

    assert ids(f"_security={ACT_CODE}|HIV") == ["umcep-hiv"]
    assert ids("_security=HIV") == ["umcep-hiv"]
    assert ids(f"_security={CONFIDENTIALITY}|R") == ["umcep-marked"]
    assert ids(f"_security={ACT_CODE}|HIV,{CONFIDENTIALITY}|R") == ["umcep-hiv", "umcep-marked"]
    assert ids(f"_security:not={ACT_CODE}|HIV") == ["umcep-asthma", "umcep-marked"]
    assert ids("_security:missing=true") == ["umcep-asthma"]
    assert ids(f"_security={CONFIDENTIALITY}|") == ["umcep-marked"]
    # Another hospital's labelled record is not found by its label either.
    assert client.get("/fhir/Condition?_security=HIV", headers=HGCJ).json()["total"] == 0
    statement = client.get("/fhir/metadata").json()["rest"][0]["resource"]
    (condition,) = [r for r in statement if r["type"] == "Condition"]
    assert "_security" in {p["name"] for p in condition["searchParam"]}
