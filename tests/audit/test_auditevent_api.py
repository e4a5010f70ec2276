"""AuditEvent over HTTP: who may read it, what each sees, search, and R4 validity."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import select

from puente.audit.models import AuditEntry
from puente.audit.render import audit_event
from puente.db import session_factory
from tests.factories import audit_entry, bearer

OFFICER = "consent-officer"
DAY = dt.datetime(2026, 3, 10, 15, 0, tzinfo=dt.UTC)


def _seed() -> dict[str, int]:
    """Events of both hospitals on two days; returns their ids by name."""
    with session_factory()() as session:
        ids = {
            "hgcj_read": audit_entry(
                session, org="hgcj", recorded_at=DAY, patients=("Patient/p1",)
            ).id,
            "hgcj_fail": audit_entry(
                session, org="hgcj", outcome=4, entities=("Organization/nope",),
                recorded_at=DAY + dt.timedelta(days=1),
            ).id,
            "hgcj_doctor": audit_entry(
                session, org="hgcj", role="clinician", fhir_user="Practitioner/dr-1",
                subtype="search-type", action="E", entities=("Organization/umcep",),
                recorded_at=DAY + dt.timedelta(hours=2),
            ).id,
            "umcep_read": audit_entry(
                session, org="umcep", recorded_at=DAY, patients=("Patient/p2",),
                entities=("Organization/umcep",),
            ).id,
        }  # fmt: skip
        session.commit()
    return ids


def _ids(body: dict[str, Any]) -> set[str]:
    return {e["resource"]["id"] for e in body.get("entry", []) if e["search"]["mode"] == "match"}


def _found(body: dict[str, Any], ids: dict[str, int]) -> set[str]:
    """The seeded events a search matched (reading the trail adds events of its own)."""
    matched = _ids(body)
    return {name for name, audit_id in ids.items() if str(audit_id) in matched}


def _search(client: TestClient, role: str = "admin", org: str | None = None, **params: str) -> Any:
    response = client.get("/fhir/AuditEvent", params=params, headers=bearer(role, org))
    assert response.status_code == 200, response.text
    return response.json()


def test_admin_reads_any_event_as_valid_r4(client: TestClient) -> None:
    ids = _seed()
    response = client.get(f"/fhir/AuditEvent/{ids['umcep_read']}", headers=bearer("admin", None))
    assert response.status_code == 200
    body = response.json()
    AuditEvent.model_validate(body)
    assert body["id"] == str(ids["umcep_read"])
    assert body["type"]["code"] == "rest"
    assert body["subtype"][0] == {
        "system": "http://hl7.org/fhir/restful-interaction", "code": "read", "display": "read",
    }  # fmt: skip
    assert body["outcome"] == "0"
    assert body["recorded"] == body["meta"]["lastUpdated"] == "2026-03-10T15:00:00.000000Z"
    requestor = body["agent"][0]
    assert requestor["requestor"] is True
    assert requestor["who"]["identifier"]["value"] == "umcep-client"
    assert requestor["network"] == {"address": "203.0.113.7", "type": "2"}
    assert body["agent"][1]["who"]["reference"] == "Organization/umcep"
    assert body["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    patient = next(e for e in body["entity"] if e["what"].get("reference") == "Patient/p2")
    assert patient["role"]["code"] == "1"
    request = next(e for e in body["entity"] if e["type"]["code"] == "XrequestId")
    assert len(request["what"]["identifier"]["value"]) == 32


def _event(**overrides: Any) -> AuditEntry:
    """An audit row in memory (rendering needs no database)."""
    values: dict[str, Any] = {
        "id": 41, "recorded_at": DAY, "request_id": "r" * 32, "event_type": "rest",
        "subtype": "read", "action": "R", "outcome": 0, "outcome_detail": None,
        "agent": "hgcj-client", "agent_role": "system", "fhir_user": None, "org_code": "hgcj",
        "country": "MX", "purpose_of_use": "TREAT", "source_ip": "203.0.113.7",
        "entities": ["Organization/hgcj"], "patients": [],
    }  # fmt: skip
    return AuditEntry(**(values | overrides))


def test_every_kind_of_event_renders_as_valid_r4() -> None:
    login = _event(
        event_type="login", subtype="login", action="E", agent_role="patient",
        fhir_user="Patient/p1", entities=[],
    )  # fmt: skip
    admin = _event(
        event_type="security-admin", subtype="system-add", action="C", agent_role="admin",
        org_code=None, country=None, request_id=None, purpose_of_use=None, source_ip=None,
        entities=["Organization/umcep"],
    )  # fmt: skip
    entries = [
        _event(),
        _event(agent_role="clinician", fhir_user="Practitioner/dr-1", outcome=8,
               outcome_detail="error.internal", patients=["Patient/p1"]),
        _event(entities=["Patient"], subtype="search-type", action="E"),
        _event(entities=["Organization/hgcj/_history/1"], subtype="vread"),
        _event(agent=None, agent_role=None, org_code=None, entities=[]),
        login,
        admin,
    ]  # fmt: skip
    for entry in entries:
        AuditEvent.model_validate(audit_event(entry, fhir_base="http://testserver/fhir"))
    assert audit_event(login, fhir_base="x")["type"]["code"] == "110114"
    assert audit_event(login, fhir_base="x")["subtype"][0]["code"] == "110122"
    assert audit_event(admin, fhir_base="x")["type"]["code"] == "110113"
    failed = audit_event(entries[1], fhir_base="x")
    assert (failed["outcome"], failed["outcomeDesc"]) == ("8", "error.internal")
    assert failed["agent"][0]["who"]["reference"] == "Practitioner/dr-1"
    assert failed["agent"][0]["altId"] == "hgcj-client"


def test_search_bundle_validates_and_pages(client: TestClient) -> None:
    _seed()
    body = _search(client, _count="2")
    assert body["type"] == "searchset"
    assert body["total"] == 4
    assert len(body["entry"]) == 2
    assert any(link["relation"] == "next" for link in body["link"])
    for entry in body["entry"]:
        AuditEvent.model_validate(entry["resource"])
    second = _search(client, _count="2", _offset="2")
    assert not _ids(body) & _ids(second)


def _events_about(patient: str, hours: range) -> list[int]:
    with session_factory()() as session:
        ids = [
            audit_entry(session, patients=(patient,), recorded_at=DAY + dt.timedelta(hours=h)).id
            for h in hours
        ]
        session.commit()
    return ids


def _follow(client: TestClient, body: dict[str, Any], relation: str) -> Any:
    url = next((link["url"] for link in body["link"] if link["relation"] == relation), None)
    if url is None:
        return None
    response = client.get(url.removeprefix("http://testserver"), headers=bearer("admin", None))
    assert response.status_code == 200, response.text
    return response.json()


def _order(body: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in body.get("entry", [])]


def test_page_links_stay_put_while_events_arrive(client: TestClient) -> None:
    """Newest first, new events land before the page a `next` link points at: an offset
    would shift and repeat rows; the keyset token does not."""
    older = [str(i) for i in _events_about("Patient/pg", range(5))]
    first = _search(client, patient="Patient/pg", _sort="-_lastUpdated", _count="2")
    assert _order(first) == [older[4], older[3]]
    assert not any(link["relation"] == "previous" for link in first["link"])
    _events_about("Patient/pg", range(10, 13))  # three newer events arrive meanwhile
    second = _follow(client, first, "next")
    assert _order(second) == [older[2], older[1]]
    assert second["total"] == 8  # the total is of now; the page is where it was
    third = _follow(client, second, "next")
    assert _order(third) == [older[0]]
    assert _follow(client, third, "next") is None
    assert _order(_follow(client, third, "previous")) == [older[2], older[1]]
    back = _follow(client, second, "previous")
    assert _order(back) == [older[4], older[3]]
    assert "_page_token=" in second["link"][0]["url"]


def test_default_order_pages_by_id_to_the_newest(client: TestClient) -> None:
    ids = [str(i) for i in _events_about("Patient/pq", range(3))]
    first = _search(client, patient="Patient/pq", _count="2")
    assert _order(first) == ids[:2]
    later = [str(i) for i in _events_about("Patient/pq", range(20, 21))]
    second = _follow(client, first, "next")
    assert _order(second) == [ids[2], later[0]]
    assert _follow(client, second, "next") is None


def test_a_forged_page_token_is_400(client: TestClient) -> None:
    response = client.get(
        "/fhir/AuditEvent",
        params={"_page_token": "bm90IGEgdG9rZW4", "_count": "2"},
        headers=bearer("admin", None),
    )
    assert response.status_code == 400
    assert response.json()["issue"][0]["diagnostics"] == "error.search_value_invalid"


def test_search_by_date(client: TestClient) -> None:
    ids = _seed()
    on_day = _search(client, date="2026-03-10")
    assert _found(on_day, ids) == {"hgcj_read", "hgcj_doctor", "umcep_read"}
    assert _ids(on_day) == {str(ids[k]) for k in ("hgcj_read", "hgcj_doctor", "umcep_read")}
    after = _search(client, date="gt2026-03-10")
    assert _found(after, ids) == {"hgcj_fail"}
    window = _search(client, date="ge2026-03-10T16:00:00Z")
    assert _found(window, ids) == {"hgcj_doctor", "hgcj_fail"}
    before = _search(client, date="lt2026-03-10T16:00:00Z")
    assert _ids(before) == {str(ids["hgcj_read"]), str(ids["umcep_read"])}
    assert _found(_search(client, date="eq2026-03-10T15:00:00Z"), ids) == {
        "hgcj_read",
        "umcep_read",
    }


def test_search_by_agent(client: TestClient) -> None:
    ids = _seed()
    assert _ids(_search(client, agent="Practitioner/dr-1")) == {str(ids["hgcj_doctor"])}
    assert _ids(_search(client, agent="umcep-client")) == {str(ids["umcep_read"])}
    assert _ids(_search(client, **{"agent:identifier": "urn:puente:agent|umcep-client"})) == {
        str(ids["umcep_read"])
    }
    assert _ids(_search(client, agent="Organization/umcep")) == {str(ids["umcep_read"])}


def test_search_by_entity_patient_and_outcome(client: TestClient) -> None:
    ids = _seed()
    assert _found(_search(client, entity="Organization/umcep"), ids) == {
        "hgcj_doctor",
        "umcep_read",
    }
    assert _found(_search(client, entity="Patient/p1"), ids) == {"hgcj_read"}
    assert _found(_search(client, patient="Patient/p2"), ids) == {"umcep_read"}
    assert _found(_search(client, patient="p1"), ids) == {"hgcj_read"}
    assert _found(_search(client, outcome="4"), ids) == {"hgcj_fail"}
    assert _found(_search(client, **{"outcome:not": "4"}), ids) == {
        "hgcj_read",
        "hgcj_doctor",
        "umcep_read",
    }
    assert _found(_search(client, subtype="search-type", action="E"), ids) == {"hgcj_doctor"}
    assert _found(_search(client, type="rest"), ids) == set(ids)
    assert (
        _found(_search(client, type="http://dicom.nema.org/resources/ontology/DCM|110114"), ids)
        == set()
    )


def test_search_by_post_form(client: TestClient) -> None:
    ids = _seed()
    response = client.post(
        "/fhir/AuditEvent/_search",
        content="patient=Patient/p1",
        headers=bearer("admin", None) | {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert _ids(response.json()) == {str(ids["hgcj_read"])}


def test_unknown_parameter_is_400_unless_lenient(client: TestClient) -> None:
    _seed()
    strict = client.get("/fhir/AuditEvent", params={"bogus": "1"}, headers=bearer("admin", None))
    assert strict.status_code == 400
    assert strict.json()["issue"][0]["code"] == "not-supported"
    bad = client.get("/fhir/AuditEvent", params={"outcome": "x"}, headers=bearer("admin", None))
    assert bad.status_code == 400
    lenient = client.get(
        "/fhir/AuditEvent",
        params={"bogus": "1"},
        headers=bearer("admin", None) | {"Prefer": "handling=lenient"},
    )
    assert lenient.status_code == 200
    modes = [e["search"]["mode"] for e in lenient.json()["entry"]]
    assert modes.count("outcome") == 1


def test_consent_officer_sees_only_own_hospital(client: TestClient) -> None:
    ids = _seed()
    mine = _search(client, OFFICER, "hgcj")
    assert _ids(mine) == {str(ids[k]) for k in ("hgcj_read", "hgcj_fail", "hgcj_doctor")}
    assert mine["total"] == 3
    assert _ids(_search(client, OFFICER, "hgcj", patient="Patient/p2")) == set()
    other = client.get(f"/fhir/AuditEvent/{ids['umcep_read']}", headers=bearer(OFFICER, "hgcj"))
    assert other.status_code == 404
    assert other.json()["issue"][0]["code"] == "not-found"
    own = client.get(f"/fhir/AuditEvent/{ids['hgcj_read']}", headers=bearer(OFFICER, "hgcj"))
    assert own.status_code == 200
    assert client.get("/fhir/AuditEvent/abc", headers=bearer(OFFICER, "hgcj")).status_code == 404


def test_admin_sees_every_hospital(client: TestClient) -> None:
    ids = _seed()
    assert _ids(_search(client)) == {str(i) for i in ids.values()}


def test_other_roles_are_refused(client: TestClient) -> None:
    ids = _seed()
    for role, org in (("clinician", "hgcj"), ("system", "hgcj"), ("patient", "hgcj"),
                      ("analyst", None)):  # fmt: skip
        kwargs: dict[str, Any] = {}
        if role in ("clinician", "patient"):
            kwargs["subject"] = "someone"
        headers = bearer(role, org, **kwargs)
        read = client.get(f"/fhir/AuditEvent/{ids['hgcj_read']}", headers=headers)
        assert read.status_code == 403, role
        assert client.get("/fhir/AuditEvent", headers=headers).status_code == 403, role
    assert client.get("/fhir/AuditEvent").status_code == 401


def test_reading_the_trail_is_itself_audited(client: TestClient) -> None:
    ids = _seed()
    client.get(f"/fhir/AuditEvent/{ids['hgcj_read']}", headers=bearer(OFFICER, "hgcj"))
    client.get("/fhir/AuditEvent", params={"outcome": "4"}, headers=bearer(OFFICER, "hgcj"))
    client.get(f"/fhir/AuditEvent/{ids['umcep_read']}", headers=bearer(OFFICER, "hgcj"))
    with session_factory()() as session:
        new = list(
            session.scalars(
                select(AuditEntry).where(AuditEntry.id > max(ids.values())).order_by(AuditEntry.id)
            )
        )
    assert [(e.subtype, e.outcome, e.agent_role) for e in new] == [
        ("read", 0, OFFICER),
        ("search-type", 0, OFFICER),
        ("read", 4, OFFICER),
    ]
    assert new[0].entities == [f"AuditEvent/{ids['hgcj_read']}"]
    assert new[1].entities == [f"AuditEvent/{ids['hgcj_fail']}"]


def test_capability_statement_lists_auditevent(client: TestClient) -> None:
    body = client.get("/fhir/metadata").json()
    [resource] = [r for r in body["rest"][0]["resource"] if r["type"] == "AuditEvent"]
    assert [i["code"] for i in resource["interaction"]] == ["read", "search-type"]
    names = {p["name"] for p in resource["searchParam"]}
    assert {"date", "agent", "entity", "patient", "outcome"} <= names
