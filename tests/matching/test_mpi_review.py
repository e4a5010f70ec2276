"""The review queue over HTTP: consent officers list, accept, reject, link and unlink;
everything audited; every other role 403; errors as OperationOutcome in their language."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from exchange.matching.models import MatchLink, MatchLinkHistory
from puente.audit.models import AuditEntry
from puente.db import session_factory
from tests.factories import bearer, fhir_json
from tests.matching.mpi_fakes import Grades, install

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
OFFICER = bearer("consent-officer", "hgcj")
UMCEP_OFFICER = bearer("consent-officer", "umcep")


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


def put(client: TestClient, resource: dict[str, Any]) -> None:
    headers = HGCJ if resource["id"].startswith("hgcj") else UMCEP
    response = client.put(
        f"/fhir/Patient/{resource['id']}", json=resource, headers={**headers, **fhir_json()}
    )
    assert response.status_code in (200, 201), response.text


def queue(client: TestClient, headers: dict[str, str] = OFFICER) -> Any:
    response = client.get("/mpi/reviews", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def waiting(client: TestClient, grades: Grades) -> Any:
    """hgcj-1 probably is umcep-1 (0.9) and possibly... no: probably umcep-2 too (0.9)."""
    grades.set("hgcj-1", "umcep-1", "probable")
    grades.set("hgcj-1", "umcep-2", "certain")
    grades.set("hgcj-1", "umcep-3", "certain")  # two certain into umcep: both to review
    for res_id in ("umcep-1", "umcep-2", "umcep-3", "hgcj-1"):
        put(client, person(res_id))
    return queue(client)


def audit_rows(subtype: str) -> list[AuditEntry]:
    with session_factory()() as session:
        return list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.subtype == subtype).order_by(AuditEntry.id)
            )
        )


def test_the_queue_lists_pairs_by_score_side_by_side(client: TestClient, grades: Grades) -> None:
    page = waiting(client, grades)
    assert page["total"] == 3
    scores = [item["score"] for item in page["items"]]
    assert scores == sorted(scores, reverse=True)
    assert [item["score"] for item in page["items"]][-1] == pytest.approx(0.9)
    first = page["items"][0]
    assert first["status"] == "review"
    assert first["explanation"] == [{"field": "birth_date", "level": "exact", "weight": 6.5}]
    sides = {first["left"]["reference"], first["right"]["reference"]}
    assert "Patient/hgcj-1" in sides
    assert first["left"]["resource"]["birthDate"] == "1985-04-12"
    assert first["left"]["features"]  # what the matcher compared
    listed = audit_rows("review-list")[-1]
    assert listed.event_type == "mpi"
    assert listed.agent_role == "consent-officer"
    assert "Patient/hgcj-1" in listed.patients
    assert "Patient/umcep-1" in listed.patients


def test_the_other_hospital_s_steward_sees_its_pairs_too(
    client: TestClient, grades: Grades
) -> None:
    waiting(client, grades)
    assert queue(client, UMCEP_OFFICER)["total"] == 3
    assert queue(client, bearer("consent-officer", "hmcj"))["total"] == 0


def test_accept_links_and_is_audited(client: TestClient, grades: Grades) -> None:
    pair = waiting(client, grades)["items"][-1]
    response = client.post(f"/mpi/reviews/{pair['id']}/accept", headers=OFFICER)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "linked"
    assert response.json()["decided_by"] == "consent-officer:consent-officer@hgcj"
    assert queue(client)["total"] == 2
    accepted = audit_rows("review-accept")[-1]
    assert accepted.entities == [f"MatchLink/{pair['id']}"]
    assert sorted(accepted.patients) == sorted(
        [pair["left"]["reference"], pair["right"]["reference"]]
    )
    again = client.post(f"/mpi/reviews/{pair['id']}/accept", headers=OFFICER)
    assert again.status_code == 409
    assert again.json()["resourceType"] == "OperationOutcome"


def test_reject_is_respected_until_the_record_changes(client: TestClient, grades: Grades) -> None:
    pair = next(i for i in waiting(client, grades)["items"] if i["score"] == pytest.approx(0.9))
    assert client.post(f"/mpi/reviews/{pair['id']}/reject", headers=OFFICER).status_code == 200
    put(client, person("hgcj-1"))  # the same content: no new version, nothing re-proposed
    assert pair["id"] not in [i["id"] for i in queue(client)["items"]]
    put(client, person("umcep-1", telecom=[{"system": "phone", "value": "+1 915 555 0101"}]))
    again = [i for i in queue(client)["items"] if i["id"] == pair["id"]]
    assert len(again) == 1
    assert again[0]["decided_by"] == "matcher"
    with session_factory()() as session:
        history = session.scalars(
            select(MatchLinkHistory.status)
            .where(MatchLinkHistory.link_id == pair["id"])
            .order_by(MatchLinkHistory.id)
        ).all()
    assert list(history) == ["review", "rejected", "review"]


def test_link_and_unlink_by_hand(client: TestClient, grades: Grades) -> None:
    put(client, person("hgcj-1"))
    put(client, person("umcep-9", family="Soto", birthDate="1960-01-01"))
    made = client.post(
        "/mpi/links", json={"first": "Patient/hgcj-1", "second": "Patient/umcep-9"}, headers=OFFICER
    )
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["status"] == "linked"
    assert link["decided_by"].startswith("consent-officer:")
    listed = client.get("/mpi/links", params={"patient": "Patient/hgcj-1"}, headers=OFFICER)
    assert [item["id"] for item in listed.json()] == [link["id"]]
    undone = client.post(f"/mpi/links/{link['id']}/unlink", headers=OFFICER)
    assert undone.status_code == 200
    assert undone.json()["status"] == "unlinked"
    put(client, person("hgcj-1", gender="male"))  # unchanged: the unlink stands
    read = client.get(f"/mpi/links/{link['id']}", headers=OFFICER).json()
    assert read["status"] == "unlinked"
    assert [(h["status"], h["reason"]) for h in read["history"]] == [
        ("linked", "link"),
        ("unlinked", "unlink"),
    ]
    assert read["history"][0]["decided_by"] == link["decided_by"]
    assert [r.action for r in audit_rows("link-create")] == ["C"]
    assert len(audit_rows("link-unlink")) == 1


def test_hand_links_need_two_systems_and_the_steward_s_hospital(
    client: TestClient, grades: Grades
) -> None:
    put(client, person("hgcj-1"))
    put(client, person("hgcj-2"))
    put(client, person("umcep-1"))
    same = client.post(
        "/mpi/links",
        json={"first": "Patient/hgcj-1", "second": "Patient/hgcj-2"},
        headers={**OFFICER, "Accept-Language": "es-MX"},
    )
    assert same.status_code == 400
    assert same.json()["issue"][0]["details"]["text"].startswith("Ambos registros")
    foreign = client.post(
        "/mpi/links",
        json={"first": "Patient/umcep-1", "second": "Patient/hgcj-1"},
        headers=bearer("consent-officer", "hmcj"),
    )
    assert foreign.status_code == 404
    missing = client.post(
        "/mpi/links", json={"first": "Patient/hgcj-1", "second": "Patient/nope"}, headers=OFFICER
    )
    assert missing.status_code == 404
    malformed = client.post("/mpi/links", json={"first": "x"}, headers=OFFICER)
    assert malformed.status_code == 400
    assert malformed.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("role", ["system", "clinician", "patient", "analyst", "admin"])
def test_other_roles_are_403(client: TestClient, grades: Grades, role: str) -> None:
    pair = waiting(client, grades)["items"][0]
    headers = bearer(role, "hgcj", subject="Patient/hgcj-1" if role == "patient" else None)
    if role == "clinician":
        headers = bearer(role, "hgcj", subject="Practitioner/p1", fhir_user="Practitioner/p1")
    for method, path in (
        ("GET", "/mpi/reviews"),
        ("POST", f"/mpi/reviews/{pair['id']}/accept"),
        ("POST", f"/mpi/reviews/{pair['id']}/reject"),
        ("GET", f"/mpi/links/{pair['id']}"),
    ):
        response = client.request(method, path, headers=headers)
        assert response.status_code == 403, (method, path)
        assert response.json()["resourceType"] == "OperationOutcome"
    with session_factory()() as session:
        assert (
            session.scalar(select(MatchLink.status).where(MatchLink.id == pair["id"])) == "review"
        )


def test_no_token_is_401_and_unknown_pairs_404(client: TestClient) -> None:
    assert client.get("/mpi/reviews").status_code == 401
    response = client.post("/mpi/reviews/999999/accept", headers=OFFICER)
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_the_review_api_is_documented(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/mpi/reviews", "/mpi/reviews/{link_id}/accept", "/mpi/links"} <= set(paths)
