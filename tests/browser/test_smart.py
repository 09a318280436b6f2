"""SMART App Launch in Debian's Chromium with SMART's own Python client, fhirclient (issue 21):
a standalone launch (a clinician picks the patient) and an EHR launch (the EHR names the
patient by MRN), each reading the patient's Observations with the token and refused outside
its scopes. The consent screen is checked with axe like every page."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhirclient import client as fhir_client
from fhirclient.models.careplan import CarePlan
from fhirclient.models.observation import Observation
from fhirclient.server import FHIRPermissionDeniedException

from tests.browser.conftest import Visitor

pytestmark = pytest.mark.browser

REDIRECT = "https://app.example/callback"


@pytest.fixture(scope="module")
def world(live) -> dict[str, Any]:
    """A registered app, and a PHQ-9 for each of two patients on different teams."""
    from concord.accounts.tokens import create_api_token
    from concord.audit.service import set_context, write_pending
    from concord.smart import service
    from tests.fhir.test_fhir_measures import ehr_response

    people = live["people"]
    with live["factory"]() as session:
        set_context(session, channel="system")
        app, _ = service.register_client(
            session,
            by=session.merge(people.admin),
            name="Mood chart",
            redirect_uris=[REDIRECT],
            scopes="launch launch/patient openid fhirUser offline_access patient/*.rs",
        )
        tokens = {
            who: create_api_token(session, user=session.merge(getattr(people, who)), by=None)[0]
            for who in ("care_manager", "outsider")
        }
        write_pending(session)
        session.commit()
        client_id = app.client_id
    for who, patient, score in (
        ("care_manager", people.patient, 1),
        ("outsider", people.other_patient, 2),
    ):
        answer = httpx.post(
            f"{live['url']}/fhir/QuestionnaireResponse",
            json=ehr_response(patient.id, [score] * 9, identifier=f"b-{who}"),
            headers={
                "Authorization": f"Bearer {tokens[who]}",
                "Content-Type": "application/fhir+json",
            },
        )
        assert answer.status_code == 201, answer.text
    return {"client_id": client_id, "tokens": tokens, "people": people}


def _through_the_browser(visitor: Visitor, url: str, *, pick: str | None) -> str:
    """Open the app's authorize URL, allow it (picking the patient when asked), and return
    the URL the browser was sent back to (the app's own, answered here)."""
    landed: list[str] = []
    # The app's page is not there (no network): the browser's request for it is what counts
    # (Playwright does not route a redirect's target, so it is watched, not answered).
    visitor.page.on(
        "request", lambda r: landed.append(r.url) if r.url.startswith(REDIRECT) else None
    )
    visitor.goto(url)
    assert "Mood chart" in visitor.page.content()
    if pick is not None:
        visitor.page.get_by_label("Which patient?").select_option(label=pick)
    visitor.page.get_by_role("button", name="Allow").click()
    visitor.page.wait_for_load_state()
    assert landed, visitor.page.url
    return landed[-1]


def _smart(live, world, scope: str, launch: str | None = None) -> Any:
    settings = {
        "app_id": world["client_id"],
        "api_base": f"{live['url']}/fhir",
        "redirect_uri": REDIRECT,
        "scope": scope,
    }
    if launch:
        settings["launch_token"] = launch
    return fhir_client.FHIRClient(settings=settings)


def _reads_only_the_patient(smart: Any, world: dict[str, Any]) -> None:
    people = world["people"]
    assert smart.patient_id == str(people.patient.id)
    found = list(
        Observation.where(struct={"patient": smart.patient_id}).perform_resources_iter(smart.server)
    )
    assert found and {o.subject.reference for o in found} == {f"Patient/{people.patient.id}"}
    everything = list(Observation.where(struct={}).perform_resources_iter(smart.server))
    assert {o.subject.reference for o in everything} == {f"Patient/{people.patient.id}"}
    # Outside its scopes (patient/Observation.rs): refused.
    with pytest.raises(FHIRPermissionDeniedException):
        list(
            CarePlan.where(struct={"patient": smart.patient_id}).perform_resources_iter(
                smart.server
            )
        )


def test_standalone_launch_with_fhirclient(live, browser, world):
    smart = _smart(live, world, "launch/patient openid fhirUser patient/Observation.rs")
    url = smart.authorize_url
    assert url.startswith(f"{live['url']}/oauth2/authorize?")
    people = world["people"]
    visitor = Visitor(browser, live["url"])
    try:
        visitor.sign_in(people.care_manager.email)
        back = _through_the_browser(
            visitor, url, pick=f"{people.patient.display_name} ({people.patient.mrn})"
        )
        smart.handle_callback(back)
        _reads_only_the_patient(smart, world)
    finally:
        visitor.close()


def test_ehr_launch_with_fhirclient(live, browser, world):
    from concord.settings import Settings

    people = world["people"]
    system = Settings().fhir_mrn_system.replace("{organization}", people.org.slug)
    launch = httpx.post(
        f"{live['url']}/api/v1/smart/launches",
        json={"system": system, "value": people.patient.mrn},
        headers={"Authorization": f"Bearer {world['tokens']['care_manager']}"},
    )
    assert launch.status_code == 201, launch.text
    smart = _smart(
        live, world, "launch openid fhirUser patient/Observation.rs", launch.json()["launch"]
    )
    visitor = Visitor(browser, live["url"])
    try:
        visitor.sign_in(people.care_manager.email)
        back = _through_the_browser(visitor, smart.authorize_url, pick=None)
        smart.handle_callback(back)
        _reads_only_the_patient(smart, world)
    finally:
        visitor.close()
