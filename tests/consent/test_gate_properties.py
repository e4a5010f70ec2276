"""Property test of the disclosure gate (issue 6, acceptance): hypothesis generates
patients with labelled records, their Consents and a caller; every path of the store
(read, vread, instance history, search with `_total` and `_summary=count`, `_include`,
`_revinclude`, type history, `Patient.link`, `$match`, `$ihe-pix`, `Patient/$everything`,
Patient-level `$export`) must show the caller exactly the records the engine permits: no
denied record leaves, and no count or status reveals one. Each Juárez patient also has an
El Paso registration that HGCJ's steward linked by hand.

The oracle is `consent.engine.decide` on the record's facts (owner, labels as the owner
reads them, patient) and the Consents as written: the engine's rules are tested by the
decision table; this checks that the store's paths apply them, and only them.
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent import facts as consent_facts
from consent.codes import ICD10, Label
from consent.engine import decide
from consent.parse import compile_rules
from consent.policy import active_policy
from puente.auth import service as auth
from puente.auth.caller import Caller
from puente.auth.scopes import Role
from puente.db import session_factory, utcnow
from tests.consent.builders import consent_json, provision
from tests.factories import bearer, fhir_json, organizations, patient, put_resource

HGCJ = bearer("system", "hgcj")
UMCEP = bearer("system", "umcep")
MRN_HGCJ = "urn:puente:mrn:hgcj"
MRN_UMCEP = "urn:puente:mrn:umcep"
OFFICER = bearer("consent-officer", "hgcj")
# code -> the label it gets at ingest (DOMAIN.md lists; none for asthma)
CODES = ("J45.9", "F32.9", "B20")
_counter = itertools.count()

CALLERS = st.sampled_from(
    [
        ("clinician", "umcep", "TREAT"),
        ("clinician", "umcep", "HPAYMT"),
        ("clinician", "hgcj", "TREAT"),
        ("system", "umcep", "TREAT"),
        ("consent-officer", "umcep", "TREAT"),
        ("analyst", None, "TREAT"),
        ("patient", "hgcj", "TREAT"),
    ]
)
RECIPIENTS = st.lists(st.sampled_from(["us", "umcep", "mx", "hgcj"]), max_size=2, unique=True)
LABELS = st.lists(st.sampled_from(["PSY", "HIV"]), max_size=2, unique=True)


@st.composite
def provisions(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    kind = draw(st.sampled_from(["permit", "deny"]))
    nested = draw(st.lists(provisions(depth + 1), max_size=2)) if depth < 2 else []
    return provision(
        kind,
        to=draw(RECIPIENTS) if depth < 2 else (),
        purposes=draw(st.sampled_from([[], ["TREAT"], ["HPAYMT"]])),
        classes=draw(st.sampled_from([[], ["Condition"], ["Patient"]])),
        labels=draw(LABELS) if depth else (),
        nested=nested,
    )


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    patients = draw(st.integers(min_value=1, max_value=2))
    return {
        "records": [
            draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=3)) for _ in range(patients)
        ],
        "consents": [
            draw(
                st.lists(
                    st.tuples(provisions(), st.sampled_from(["active", "active", "inactive"])),
                    max_size=2,
                )
            )
            for _ in range(patients)
        ],
        "caller": draw(CALLERS),
        "me": draw(st.integers(min_value=0, max_value=patients - 1)),
    }


def _build(client: TestClient, world: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """Store the world; its Patient ids and its Consents as written."""
    run = next(_counter)
    tag = uuid.uuid4().hex[:6]
    patient_ids, consents = [], []
    for n, (codes, written) in enumerate(zip(world["records"], world["consents"], strict=True)):
        pid = f"hgcj-w{run}{tag}-p{n}"
        patient_ids.append(pid)
        # Distinct people: the MPI links nothing (names and birth dates differ).
        put_resource(
            client,
            patient(
                id=pid,
                identifier=[{"system": MRN_HGCJ, "value": pid}],
                name=[{"family": f"Prueba{tag}{n}", "given": [f"Nombre{n}{run}"]}],
                birthDate=f"19{50 + n + run % 40}-0{1 + n}-1{n}",
            ),
            HGCJ,
        )
        # The same person registered at El Paso under another name (the matcher does not
        # link them), linked by HGCJ's steward: `Patient.link` and `$ihe-pix` cross here.
        put_resource(
            client,
            patient(
                id=_el_paso(pid),
                identifier=[{"system": MRN_UMCEP, "value": _el_paso(pid)}],
                name=[{"family": f"Otro{tag}{n}", "given": [f"Nombre{run}"]}],
                birthDate=f"20{10 + n}-1{n}-2{n}",
            ),
            UMCEP,
        )
        linked = client.post(
            "/mpi/links",
            json={"first": f"Patient/{pid}", "second": f"Patient/{_el_paso(pid)}"},
            headers=OFFICER,
        )
        assert linked.status_code in (200, 201), linked.text
        for i, code in enumerate(codes):
            put_resource(
                client,
                {
                    "resourceType": "Condition",
                    "id": f"{pid}-c{i}",
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": ICD10, "code": code}]},
                    "recordedDate": "2026-03-02",
                },
                HGCJ,
            )
        for j, (root, status) in enumerate(written):
            resource = consent_json(root, cid=f"{pid}-k{j}", patient=pid, status=status)
            response = client.put(
                f"/fhir/Consent/{resource['id']}", json=resource, headers={**OFFICER, **fhir_json()}
            )
            if response.status_code == 422:  # Puente's Consent rules refused it: not stored
                continue
            assert response.status_code == 201, response.text
            consents.append(resource)
    return patient_ids, consents


def _caller(world: dict[str, Any], patient_ids: list[str]) -> tuple[Caller, dict[str, str]]:
    role, org, purpose = world["caller"]
    fhir_user = f"Patient/{patient_ids[world['me']]}" if role == "patient" else None
    country = {"umcep": "US", "hgcj": "MX"}.get(org or "")
    caller = Caller(
        subject="x",
        role=Role(role),
        org_code=org,
        country=country,
        purpose_of_use=purpose,
        fhir_user=fhir_user,
    )
    return caller, bearer(role, org, purpose=purpose, fhir_user=fhir_user)


def _expected(
    client: TestClient, caller: Caller, patient_ids: list[str], consents: list[dict[str, Any]]
) -> set[str]:
    """The oracle: which of the world's records the engine permits this caller."""
    rules = [compile_rules(c) for c in consents]
    requester = consent_facts.requester_for(caller)
    policy, now = active_policy(), utcnow()
    permitted = set()
    for pid in patient_ids:
        bundle = client.get(f"/fhir/Patient?_id={pid}&_revinclude=Condition:subject", headers=HGCJ)
        for entry in bundle.json()["entry"]:
            resource = entry["resource"]
            labels = [
                Label(c["system"], c["code"]) for c in resource.get("meta", {}).get("security", [])
            ]
            facts = consent_facts.record_facts(
                resource, owner="hgcj", owner_country="MX", labels=labels, patients={pid}
            )
            if decide(requester, facts, rules, policy, now=now).permit:
                permitted.add(f"{resource['resourceType']}/{resource['id']}")
    return permitted


def _refs(bundle: dict[str, Any]) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") != "outcome" and "resource" in e
    }


_ready: set[int] = set()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_every_path_shows_exactly_what_the_engine_permits(
    client: TestClient, world: dict[str, Any]
) -> None:
    if id(client) not in _ready:
        with session_factory()() as session:
            for code, name, country, systems in (
                ("hgcj", "HGCJ", "MX", (MRN_HGCJ,)),
                ("umcep", "UMC", "US", (MRN_UMCEP,)),
            ):
                auth.add_system(
                    session, code=code, name=name, country=country, identifier_systems=systems
                )
            organizations(session)
            session.commit()
        _ready.add(id(client))
    patient_ids, consents = _build(client, world)
    caller, headers = _caller(world, patient_ids)
    expected = _expected(client, caller, patient_ids, consents)
    everything = set()
    for pid in patient_ids:
        everything.add(f"Patient/{pid}")
        conditions = client.get(
            f"/fhir/Condition?subject=Patient/{pid}&_total=accurate", headers=headers
        )
        if conditions.status_code == 403:  # a role no scope lets search: nothing at all
            assert not any(r.startswith("Condition/") for r in expected)
            continue
        bundle = conditions.json()
        found = _refs(bundle)
        everything |= {f"Condition/{e}" for e in _ids_of(client, pid)}
        wanted = {r for r in expected if r.startswith("Condition/") and f"/{pid}-" in r}
        assert found == wanted
        assert bundle["total"] == len(wanted)
        count = client.get(f"/fhir/Condition?subject=Patient/{pid}&_summary=count", headers=headers)
        assert count.json()["total"] == len(wanted)
        rev = client.get(
            f"/fhir/Patient?_id={pid}&_revinclude=Condition:subject", headers=headers
        ).json()
        patient_ref = f"Patient/{pid}"
        assert _refs(rev) == ({patient_ref} | wanted if patient_ref in expected else set())
        assert rev["total"] == (1 if patient_ref in expected else 0)
        inc = client.get(
            f"/fhir/Condition?subject=Patient/{pid}&_include=Condition:subject", headers=headers
        ).json()
        assert _refs(inc) == wanted | (
            {patient_ref} if wanted and patient_ref in expected else set()
        )
    for ref in sorted(everything):
        allowed = ref in expected
        for path in (ref, f"{ref}/_history/1", f"{ref}/_history"):
            status = client.get(f"/fhir/{path}", headers=headers).status_code
            # 403 is the role's scope, the same whether the record exists or not.
            assert status in ({200} if allowed else {403, 404}), (path, status, world)
    # Newest first: this world's versions are on the first page.
    history = client.get("/fhir/Condition/_history?_count=500", headers=headers)
    assert history.status_code in (200, 403)
    shown = _refs(history.json()) if history.status_code == 200 else set()
    ours = {r for r in shown if any(f"/{pid}-" in r for pid in patient_ids)}
    assert ours == {r for r in expected if r.startswith("Condition/")}
    for pid in patient_ids:
        about = {r for r in expected if r == f"Patient/{pid}" or r.startswith(f"Condition/{pid}-")}
        response = client.get(
            f"/fhir/Patient/{pid}/$everything?_type=Patient,Condition&_count=1000",
            headers=headers,
        )
        if response.status_code == 403:  # the role may not call it, whatever the patient
            continue
        if f"Patient/{pid}" in expected:
            assert response.status_code == 200, response.text
            assert {r for r in _refs(response.json()) if _in_world(r, patient_ids)} == about
        else:  # as if the patient did not exist
            assert response.status_code == 404, (response.text, world)
    for pid in patient_ids:
        own = client.get(f"/fhir/Patient/{pid}", headers=HGCJ).json()
        described = {k: v for k, v in own.items() if k not in ("id", "meta")}
        matched = client.post(
            "/fhir/Patient/$match",
            json={
                "resourceType": "Parameters",
                "parameter": [{"name": "resource", "resource": described}],
            },
            headers={**headers, **fhir_json()},
        )
        if matched.status_code == 403:  # the role may not match
            continue
        assert matched.status_code == 200, matched.text
        found = {r for r in _refs(matched.json()) if _in_world(r, patient_ids)}
        assert found <= expected, (found, world)
        assert (f"Patient/{pid}" in found) == (f"Patient/{pid}" in expected)
    for pid in patient_ids:
        juarez = f"Patient/{pid}"
        el_paso = client.get(f"/fhir/Patient/{_el_paso(pid)}", headers=headers)
        if el_paso.status_code != 200:  # the El Paso record is not the caller's to see
            continue
        links = {link["other"]["reference"] for link in el_paso.json().get("link", [])}
        assert (juarez in links) == (juarez in expected), (links, world)
        pix = client.get(
            "/fhir/Patient/$ihe-pix",
            params={"sourceIdentifier": f"{MRN_UMCEP}|{_el_paso(pid)}"},
            headers=headers,
        )
        if pix.status_code == 403:  # the role may not ask
            continue
        assert pix.status_code == 200, pix.text
        targets = {
            p["valueReference"]["reference"]
            for p in pix.json().get("parameter", [])
            if p["name"] == "targetId"
        }
        assert (juarez in targets) == (juarez in expected), (targets, world)
    exported = _exported(client, headers)
    if exported is not None:
        assert {r for r in exported if _in_world(r, patient_ids)} == expected


def _exported(client: TestClient, headers: dict[str, str]) -> set[str] | None:
    """A Patient-level `$export` of Patients and Conditions, as the caller: the records in
    its files (None: the role may not export)."""
    kick = client.get(
        "/fhir/Patient/$export?_type=Patient,Condition",
        headers={**headers, "Prefer": "respond-async"},
    )
    if kick.status_code == 403:
        return None
    assert kick.status_code == 202, kick.text
    base = "http://testserver"
    status = client.get(kick.headers["content-location"].removeprefix(base), headers=headers)
    assert status.status_code == 200, status.text  # no broker: it ran after the kick-off
    found = set()
    for output in status.json()["output"]:
        lines = client.get(output["url"].removeprefix(base), headers=headers)
        assert lines.status_code == 200, lines.text
        for line in lines.text.splitlines():
            resource = json.loads(line)
            found.add(f"{resource['resourceType']}/{resource['id']}")
    return found


def _el_paso(pid: str) -> str:
    return pid.replace("hgcj-", "umcep-", 1)


def _in_world(ref: str, patient_ids: list[str]) -> bool:
    return any(
        ref == f"Patient/{pid}" or ref.startswith(f"Condition/{pid}-") for pid in patient_ids
    )


def _ids_of(client: TestClient, pid: str) -> list[str]:
    bundle = client.get(f"/fhir/Condition?subject=Patient/{pid}", headers=HGCJ).json()
    return [e["resource"]["id"] for e in bundle.get("entry", [])]
