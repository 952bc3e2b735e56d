"""The order-to-result loop (乡开县检) with authentication on: a township clinic orders, the county hospital reports on
that order, the clinic reads the report under its own order (no separate consent; audited) and is notified by a
FHIR R4 Subscription (rest-hook) at an endpoint of its own. Subscriptions that can never fire say so in their
status. The subscriber's endpoint is a real HTTP server on 127.0.0.1 in this process."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from conftest import ServerProcess, call_as, dev_token, free_port, wait_for
from network import ITEM

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"


class Receiver:
    """The subscribers' endpoints: every POST is kept (path, headers, body); paths under /down answer 503."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.calls.append((self.path, dict(self.headers), body))
                self.send_response(503 if self.path.startswith("/down") else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[dict[str, Any] | None]:
        return [json.loads(body) if body else None for p, _, body in list(self.calls) if p == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.http.shutdown()


@pytest.fixture(scope="module")
def loop(authed: ServerProcess) -> ServerProcess:
    return authed


token = dev_token
call = call_as


@pytest.fixture(scope="module")
def township(loop: ServerProcess) -> dict[str, str]:
    """共青城: a county hospital, a township health centre, an unrelated hospital, and the clinic's patient."""
    t = uuid.uuid4().hex[:6]
    ids = {"county": f"cty-{t}", "clinic": f"twn-{t}", "other": f"oth-{t}", "patient": f"pt-{t}"}
    admin = token(loop, None, "system/*.cruds")
    for key, name, level in (("county", "共青城市人民医院", "2A"), ("clinic", "共青城某乡镇卫生院", "1"),
                             ("other", "另一家医院", "2A")):
        org = {"resourceType": "Organization", "id": ids[key], "name": name,
               "type": [{"coding": [{"system": "http://hr.example.org/fhir/CodeSystem/hr-institution-level",
                                     "code": level}]}]}
        assert call(loop, "PUT", f"/Organization/{ids[key]}", admin, org).status_code in (200, 201)
    clinic = token(loop, f"Organization/{ids['clinic']}")
    patient = {"resourceType": "Patient", "id": ids["patient"], "name": [{"text": "李四"}],
               "managingOrganization": {"reference": f"Organization/{ids['clinic']}"}}
    assert call(loop, "PUT", f"/Patient/{ids['patient']}", clinic, patient).status_code in (200, 201)
    return ids


def subscription(endpoint: str, criteria: str, payload: str | None = "application/fhir+json",
                 content: str | None = None, heartbeat: int | None = None, status: str = "requested") -> dict:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint, "header": ["X-Clinic-Key: k-123"]}
    if payload:
        channel["payload"] = payload
    if content:
        channel["_payload"] = {"extension": [{"url": f"{BACKPORT}/backport-payload-content", "valueCode": content}]}
    if heartbeat:
        channel["extension"] = [{"url": f"{BACKPORT}/backport-heartbeat-period", "valueUnsignedInt": heartbeat}]
    return {"resourceType": "Subscription", "status": status, "reason": "乡开县检: results of our orders",
            "criteria": criteria, "channel": channel}


def status_of(loop: ServerProcess, bearer: str, sid: str) -> dict:
    return call(loop, "GET", f"/Subscription/{sid}", bearer).json()


def test_the_township_clinic_is_notified_of_and_reads_the_county_report_of_its_order(loop, receiver, township):
    ids = township
    clinic = token(loop, f"Organization/{ids['clinic']}")
    county = token(loop, f"Organization/{ids['county']}")
    other = token(loop, f"Organization/{ids['other']}")
    criteria = f"DiagnosticReport?based-on:ServiceRequest.requester=Organization/{ids['clinic']}"
    created = call(loop, "POST", "/Subscription", clinic,
                   subscription(f"{receiver.url}/clinic", criteria, content="full-resource"))
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert created.json()["status"] == "requested"
    # the handshake reaches the endpoint, with the channel's header; then the server marks it active
    handshake = wait_for(lambda: receiver.at("/clinic"))[0]
    assert handshake["entry"][0]["resource"]["parameter"][2] == {"name": "type", "valueCode": "handshake"}
    assert any(h.get("X-Clinic-Key") == "k-123" for p, h, _ in receiver.calls if p == "/clinic")
    wait_for(lambda: status_of(loop, clinic, sid)["status"] == "active")
    # another hospital subscribes to the clinic's orders too: it may not read them, so it is never told
    nosy = call(loop, "POST", "/Subscription", other, subscription(f"{receiver.url}/nosy", criteria,
                                                                    content="id-only"))
    assert nosy.status_code == 201
    wait_for(lambda: status_of(loop, other, nosy.json()["id"])["status"] == "active")
    # the Subscription is its subscriber's: nobody else sees it
    assert call(loop, "GET", f"/Subscription/{sid}", other).status_code == 404
    assert status_of(loop, clinic, sid)["extension"][0]["valueReference"]["reference"] == \
        f"Organization/{ids['clinic']}"

    order = {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
             "code": {"coding": [{"system": ITEM, "code": "CT-HEAD"}]},
             "subject": {"reference": f"Patient/{ids['patient']}"},
             "requester": {"reference": f"Organization/{ids['clinic']}"},
             "performer": [{"reference": f"Organization/{ids['county']}"}]}
    sr = call(loop, "POST", "/ServiceRequest", clinic, order)
    assert sr.status_code == 201, sr.text
    report = {"resourceType": "DiagnosticReport", "status": "final", "code": {"coding": [{"system": ITEM,
                                                                                         "code": "CT-HEAD"}]},
              "basedOn": [{"reference": f"ServiceRequest/{sr.json()['id']}"}],
              "subject": {"reference": f"Patient/{ids['patient']}"}, "issued": "2026-11-30T10:00:00+08:00",
              "effectiveDateTime": "2026-11-30T09:00:00+08:00",
              "performer": [{"reference": f"Organization/{ids['county']}"}], "conclusion": "颅内未见明显异常。"}
    stored = call(loop, "POST", "/DiagnosticReport", county, report)
    assert stored.status_code == 201, stored.text
    rid = stored.json()["id"]

    def event() -> dict | None:
        return next((b for b in receiver.at("/clinic") if b and b["entry"][0]["resource"]["parameter"][2]
                     ["valueCode"] == "event-notification"), None)
    notified = wait_for(event)
    focus = notified["entry"][1]
    assert focus["fullUrl"].endswith(f"DiagnosticReport/{rid}")
    assert focus["resource"]["conclusion"] == "颅内未见明显异常。"
    time.sleep(1.0)
    assert not [b for b in receiver.at("/nosy") if b and b["entry"][0]["resource"]["parameter"][2]["valueCode"]
                == "event-notification"]

    # the clinic reads the report of its own order (no consent); the other hospital does not
    assert call(loop, "GET", f"/DiagnosticReport/{rid}", clinic).status_code == 200
    found = call(loop, "GET", f"/DiagnosticReport?patient=Patient/{ids['patient']}", clinic).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [rid]
    assert call(loop, "GET", f"/DiagnosticReport/{rid}", other).status_code == 404
    # and the audit says it was the order that allowed it
    def audited() -> list:
        events = call(loop, "GET", f"/AuditEvent?entity=ServiceRequest/{sr.json()['id']}", clinic).json()
        return [e["resource"] for e in events.get("entry", [])
                if any(f"ServiceRequest/{sr.json()['id']}" in p for a in e["resource"]["agent"]
                       for p in a.get("policy", []))]
    event_seen = wait_for(audited)[0]
    assert {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                 "code": "CST", "display": "custodian"}]},
            "who": {"reference": f"Organization/{ids['county']}"}, "requestor": False} in event_seen["agent"]


def test_a_subscription_whose_endpoint_is_down_goes_to_error_and_says_why(loop, receiver, township):
    clinic = token(loop, f"Organization/{township['clinic']}")
    down = call(loop, "POST", "/Subscription", clinic,
                subscription(f"{receiver.url}/down", "DiagnosticReport?status=final", payload=None))
    assert down.status_code == 201
    failed = wait_for(lambda: (s := status_of(loop, clinic, down.json()["id"]))["status"] == "error" and s)
    assert "failed 3 times" in failed["error"] and "HTTP 503" in failed["error"] and "/down" in failed["error"]
    assert len(receiver.at("/down")) == 3 and receiver.at("/down")[0] is None  # payload absent: no body
    unreachable = call(loop, "POST", "/Subscription", clinic,
                       subscription(f"http://127.0.0.1:{free_port()}/nobody", "DiagnosticReport?status=final"))
    failed = wait_for(lambda: (s := status_of(loop, clinic, unreachable.json()["id"]))["status"] == "error" and s)
    assert "ConnectionError" in failed["error"]
    # the history shows requested -> error, and a client may ask again (requested)
    history = call(loop, "GET", f"/Subscription/{unreachable.json()['id']}/_history", clinic).json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["error", "requested"]


def test_a_heartbeat_comes_when_nothing_else_is_sent(loop, receiver, township):
    clinic = token(loop, f"Organization/{township['clinic']}")
    beat = call(loop, "POST", "/Subscription", clinic,
                subscription(f"{receiver.url}/beat", "DiagnosticReport?code=NO-SUCH-ITEM", heartbeat=1))
    assert beat.status_code == 201
    kinds = wait_for(lambda: (k := [b["entry"][0]["resource"]["parameter"][2]["valueCode"]
                                    for b in receiver.at("/beat") if b]) and "heartbeat" in k and k)
    assert kinds[0] == "handshake"


@pytest.mark.parametrize(("change", "where"), [
    ({"criteria": "Nonsense?x=1"}, "Subscription.criteria"),                       # a type we do not store
    ({"criteria": "DiagnosticReport?colour=red"}, "Subscription.criteria"),        # a parameter we do not know
    ({"criteria": "DiagnosticReport"}, "Subscription.criteria"),                   # no criteria at all
    ({"status": "active"}, "Subscription.status"),                                 # only the server activates
    ({"channel": {"type": "websocket"}}, "Subscription.channel.type"),
    ({"channel": {"type": "rest-hook", "endpoint": "clinic.example/hook"}}, "Subscription.channel.endpoint"),
    ({"channel": {"type": "rest-hook", "endpoint": "http://x.example", "payload": "text/xml"}},
     "Subscription.channel.payload"),
])
def test_a_subscription_that_could_never_fire_is_refused_and_nothing_is_stored(loop, receiver, township, change,
                                                                              where):
    clinic = token(loop, f"Organization/{township['clinic']}")
    before = call(loop, "GET", "/Subscription?_summary=count", clinic).json()["total"]
    body = {**subscription(f"{receiver.url}/never", "DiagnosticReport?status=final"), **change}
    refused = call(loop, "POST", "/Subscription", clinic, body)
    assert refused.status_code == 422, refused.text
    issue = refused.json()["issue"][0]
    assert issue["expression"] == [where] and issue["diagnostics"]
    assert call(loop, "GET", "/Subscription?_summary=count", clinic).json()["total"] == before
