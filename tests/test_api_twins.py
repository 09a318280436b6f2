"""Every page action has a JSON API twin (issue 17): a program can do what a person can.

The page routes that change data come from the app itself; each must be in TWINS, naming the
/api/v1 (or /fhir) route that does the same through the same service, or in EXEMPT with the
reason it has none. A new page action without a twin fails here the day it is written.

A page and its twin read their input with the same model: the page declares it with
concord.web.forms.FormOf, the API takes it as its body, and the two sets must be equal."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute

from concord.app import create_app
from concord.decisions.schemas import AnsweredIn
from concord.settings import Settings

P = "/patients/{patient_id}"
A = "/api/v1/patients/{patient_id}"
SECTIONS = (
    "concerns",
    "goals",
    "milestones",
    "interventions",
    "action_steps",
    "strengths",
    "barriers",
    "contingencies",
)

# Working through a decision (values, a question, SURE), from either side; the team also marks
# a question answered.
DECISION_STEPS = (
    ("PUT", f"{A}/decisions/{{decision_id}}/values"),
    ("POST", f"{A}/decisions/{{decision_id}}/questions"),
    ("PUT", f"{A}/decisions/{{decision_id}}/sure"),
)

# (method, page path) -> the API routes that do the same. Several when one page route stands
# for several actions (a plan section, a decision step).
TWINS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    # --- patients, care teams, family ----------------------------------------------------
    ("POST", "/patients/new"): (("POST", "/api/v1/patients"),),
    # --- EHR import: a held patient match decided by a person (issue 20) ---------------
    ("POST", "/ehr/matches/{match_id}"): (("POST", "/api/v1/ehr/matches/{match_id}"),),
    ("POST", "/ehr/imports/{import_id}/undo"): (("POST", "/api/v1/ehr/imports/{import_id}/undo"),),
    ("POST", f"{P}/emergency-access"): (("POST", f"{A}/emergency-access"),),
    ("POST", "/admin/part2/{clinic_id}"): (("PUT", "/api/v1/clinics/{clinic_id}/part2-program"),),
    ("POST", "/admin/part2/{clinic_id}/privacy-officer"): (
        ("PUT", "/api/v1/clinics/{clinic_id}/privacy-officer"),
    ),
    ("POST", f"{P}/team/add"): (("POST", f"{A}/care-team/members"),),
    ("POST", f"{P}/team/{{member_id}}/lead"): (
        ("POST", f"{A}/care-team/members/{{member_id}}/lead"),
    ),
    ("POST", f"{P}/team/{{member_id}}/remove"): (
        ("POST", f"{A}/care-team/members/{{member_id}}/remove"),
    ),
    # The administrator's page of a patient's team: the same API routes (an administrator's
    # token reaches the team as the page does, without clinical content).
    ("POST", f"/admin{P}/team/add"): (("POST", f"{A}/care-team/members"),),
    ("POST", f"/admin{P}/team/{{member_id}}/lead"): (
        ("POST", f"{A}/care-team/members/{{member_id}}/lead"),
    ),
    ("POST", f"/admin{P}/team/{{member_id}}/remove"): (
        ("POST", f"{A}/care-team/members/{{member_id}}/remove"),
    ),
    ("POST", f"{P}/related"): (("POST", f"{A}/related-persons"),),
    ("POST", f"{P}/related/{{related_id}}/consent"): (
        ("POST", f"{A}/related-persons/{{related_id}}/consent"),
    ),
    # --- consents ------------------------------------------------------------------------
    ("POST", f"{P}/consents"): (("POST", f"{A}/consents"),),
    ("POST", f"{P}/consents/{{consent_id}}/revoke"): (
        ("POST", f"{A}/consents/{{consent_id}}/revoke"),
    ),
    # The patient signs a template in the portal ("Share my record").
    ("POST", "/my/consents/share"): (("POST", f"{A}/consents/signed"),),
    # --- SMART apps (issue 21) -------------------------------------------------------------
    ("POST", "/admin/smart-apps"): (("POST", "/api/v1/smart/clients"),),
    ("POST", "/admin/smart-apps/{app_id}/acts-for"): (
        ("PUT", "/api/v1/smart/clients/{app_id}/acts-for"),
    ),
    ("POST", "/admin/smart-apps/{app_id}/disable"): (
        ("POST", "/api/v1/smart/clients/{app_id}/disable"),
    ),
    ("POST", "/my/apps/{grant_id}/revoke"): (("POST", "/api/v1/my/apps/{grant_id}/revoke"),),
    # --- care plans ----------------------------------------------------
    ("POST", f"{P}/plan/start"): (("POST", f"{A}/careplan"),),
    ("POST", f"{P}/plan/activate"): (("POST", f"{A}/careplan/activate"),),
    ("POST", f"{P}/plan/review"): (("POST", f"{A}/careplan/review"),),
    ("POST", f"{P}/plan/end"): (("POST", f"{A}/careplan/end"),),
    ("POST", f"{P}/plan/preferences"): (("PUT", f"{A}/careplan/preferences"),),
    ("POST", f"{P}/plan/agree"): (("POST", f"{A}/careplan/agree"),),
    ("POST", f"{P}/plan/comments"): (("POST", f"{A}/careplan/comments"),),
    ("POST", f"{P}/plan/action_steps/{{step_id}}/status"): (
        ("POST", f"{A}/careplan/action_steps/{{step_id}}/status"),
    ),
    ("POST", f"{P}/plan/{{section}}"): tuple(("POST", f"{A}/careplan/{s}") for s in SECTIONS),
    ("POST", f"{P}/plan/{{section}}/{{item_id}}"): tuple(
        ("PUT", f"{A}/careplan/{s}/{{item_id}}") for s in SECTIONS
    ),
    ("POST", f"{P}/plan/{{section}}/{{item_id}}/remove"): tuple(
        ("POST", f"{A}/careplan/{s}/{{item_id}}/remove") for s in SECTIONS
    ),
    # The patient's portal: the same routes with the patient's own id.
    ("POST", "/my/plan/propose"): (("POST", f"{A}/careplan/goals/propose"),),
    ("POST", "/my/plan/agree"): (("POST", f"{A}/careplan/agree"),),
    ("POST", "/my/plan/comments"): (("POST", f"{A}/careplan/comments"),),
    ("POST", "/my/steps/{step_id}/status"): (
        ("POST", f"{A}/careplan/action_steps/{{step_id}}/status"),
    ),
    # --- measures ----------------------------------------------------
    ("POST", f"{P}/measures/schedules"): (("POST", f"{A}/measures/schedules"),),
    ("POST", f"{P}/measures/schedules/{{schedule_id}}"): (
        ("POST", f"{A}/measures/schedules/{{schedule_id}}"),
    ),
    ("POST", f"{P}/measures/ask-now"): (("POST", f"{A}/measures/ask-now"),),
    ("POST", f"{P}/measures/record/{{code}}"): (("POST", f"{A}/measures/{{code}}/responses"),),
    # The patient's own check-in: the page saves answers as they go and submits at the end, as
    # the check-in API does; another system sends the completed response (FHIR).
    ("POST", "/my/check-ins/start"): (
        ("POST", f"{A}/check-ins"),
        ("POST", "/fhir/QuestionnaireResponse"),
    ),
    ("POST", "/my/check-ins/{response_id}"): (
        ("PUT", f"{A}/check-ins/{{response_id}}"),
        ("POST", "/fhir/QuestionnaireResponse"),
    ),
    # --- secure messages (issue 22) -----------------------------------
    ("POST", f"{P}/messages"): (("POST", f"{A}/messages"),),
    ("POST", f"{P}/messages/{{thread_id}}"): (("POST", f"{A}/messages/{{thread_id}}"),),
    ("POST", f"{P}/messages/{{thread_id}}/status"): (
        ("POST", f"{A}/messages/{{thread_id}}/status"),
    ),
    ("POST", "/my/messages"): (("POST", f"{A}/messages"),),
    ("POST", "/my/messages/{thread_id}"): (("POST", f"{A}/messages/{{thread_id}}"),),
    # a family member the patient's consent names (the same API doors)
    ("POST", "/shared/{patient_id}/messages"): (("POST", f"{A}/messages"),),
    ("POST", "/shared/{patient_id}/messages/{thread_id}"): (
        ("POST", f"{A}/messages/{{thread_id}}"),
    ),
    # --- safety ----------------------------------------------------
    ("POST", "/alerts/notifications/read"): (("POST", "/api/v1/alerts/notifications/read"),),
    ("POST", f"{P}/alerts/{{alert_id}}/acknowledge"): (
        ("POST", "/api/v1/alerts/{alert_id}/acknowledge"),
    ),
    ("POST", f"{P}/alerts/{{alert_id}}/close"): (("POST", "/api/v1/alerts/{alert_id}/close"),),
    ("POST", f"{P}/alerts/{{alert_id}}/follow-up"): (
        ("POST", "/api/v1/alerts/{alert_id}/follow-up"),
    ),
    ("POST", f"{P}/safety/flag"): (("POST", f"{A}/alerts"),),
    ("POST", f"{P}/safety-plan"): (("PUT", f"{A}/safety-plan"),),
    ("POST", f"{P}/safety-plan/people/{{related_id}}"): (
        ("POST", f"{A}/safety-plan/people/{{related_id}}"),
    ),
    ("POST", "/my/safety-plan"): (("PUT", f"{A}/safety-plan"),),
    ("POST", "/my/safety-plan/people/{related_id}"): (
        ("POST", f"{A}/safety-plan/people/{{related_id}}"),
    ),
    # --- registry ----------------------------------------------------
    ("POST", f"{P}/registry/enroll"): (("POST", f"{A}/episodes"),),
    ("POST", f"{P}/registry/episodes/{{episode_id}}/status"): (
        ("POST", f"{A}/episodes/{{episode_id}}/status"),
    ),
    ("POST", f"{P}/registry/episodes/{{episode_id}}/diagnosis"): (
        ("POST", f"{A}/episodes/{{episode_id}}/diagnosis"),
    ),
    ("POST", f"{P}/registry/contacts"): (("POST", f"{A}/contacts"),),
    ("POST", f"{P}/registry/contacts/{{contact_id}}/void"): (
        ("POST", f"{A}/contacts/{{contact_id}}/void"),
    ),
    ("POST", f"{P}/registry/reviews"): (("POST", f"{A}/reviews"),),
    ("POST", f"{P}/registry/reviews/record"): (("POST", f"{A}/reviews/record"),),
    ("POST", f"{P}/registry/recommendations/{{rec_id}}"): (
        ("POST", f"{A}/recommendations/{{rec_id}}/decision"),
    ),
    ("POST", f"{P}/tasks"): (("POST", f"{A}/tasks"),),
    ("POST", "/tasks/{task_id}/done"): (("POST", "/api/v1/tasks/{task_id}/done"),),
    ("POST", f"{P}/relapse-plan"): (("PUT", f"{A}/relapse-plan"),),
    ("POST", "/my/relapse-plan"): (("PUT", f"{A}/relapse-plan"),),
    ("POST", "/my/recommendations/{rec_id}"): (
        ("POST", f"{A}/recommendations/{{rec_id}}/patient-view"),
    ),
    # --- medications ----------------------------------------------------
    ("POST", f"{P}/medications"): (("POST", f"{A}/medications"),),
    ("POST", f"{P}/medications/{{medication_id}}"): (
        ("PUT", f"{A}/medications/{{medication_id}}"),
    ),
    ("POST", f"{P}/medications/{{medication_id}}/status"): (
        ("POST", f"{A}/medications/{{medication_id}}/status"),
    ),
    ("POST", f"{P}/medications/{{medication_id}}/review"): (
        ("POST", f"{A}/medications/{{medication_id}}/review"),
    ),
    ("POST", f"{P}/medication-reports/{{report_id}}/resolve"): (
        ("POST", f"{A}/medication-reports/{{report_id}}/resolve"),
    ),
    ("POST", f"{P}/medication-findings/{{finding_id}}/override"): (
        ("POST", f"{A}/medication-findings/{{finding_id}}/override"),
    ),
    ("POST", f"{P}/medication-protocol"): (("POST", f"{A}/medication-protocol"),),
    ("POST", f"{P}/moud-records"): (("POST", f"{A}/moud-records"),),
    ("POST", "/my/medications/{medication_id}/checkin"): (
        ("POST", f"{A}/medications/{{medication_id}}/checkin"),
    ),
    ("POST", f"{P}/medication-protocol/{{entry_id}}/done"): (
        ("POST", f"{A}/medication-protocol/{{entry_id}}/done"),
    ),
    ("POST", "/my/medications/reported"): (("POST", f"{A}/medications/reported"),),
    # --- the days-of-use calendar (issue 19), from either side ----------------------------
    ("POST", f"{P}/substance-use/days"): (("POST", f"{A}/substance-use/days"),),
    ("POST", "/my/substance-use/days"): (("POST", f"{A}/substance-use/days"),),
    ("POST", "/my/medications/{medication_id}/report"): (
        ("POST", f"{A}/medications/{{medication_id}}/reports"),
    ),
    # --- visits and notices (issue 22) -------------------------------------------------
    ("POST", "/my/visits"): (("POST", f"{A}/visit-requests"),),
    ("POST", "/my/visits/{visit_id}/accept"): (("POST", f"{A}/visits/{{visit_id}}/accept"),),
    ("POST", "/my/visits/{visit_id}/cancel"): (("POST", f"{A}/visits/{{visit_id}}/cancel"),),
    ("POST", f"{P}/visits"): (("POST", f"{A}/visits"),),
    ("POST", f"{P}/visits/{{visit_id}}/book"): (("POST", f"{A}/visits/{{visit_id}}/book"),),
    ("POST", f"{P}/visits/{{visit_id}}/cancel"): (("POST", f"{A}/visits/{{visit_id}}/cancel"),),
    ("POST", f"{P}/visits/{{visit_id}}/attendance"): (
        ("POST", f"{A}/visits/{{visit_id}}/attendance"),
    ),
    ("POST", "/notices/read"): (("POST", "/api/v1/notices/read"),),
    ("POST", "/notifications/settings"): (("PUT", "/api/v1/notification-preferences"),),
    # --- decisions ----------------------------------------------------
    ("POST", "/my/decisions"): (("POST", f"{A}/decisions"),),
    ("POST", f"{P}/decisions"): (("POST", f"{A}/decisions"),),
    ("POST", "/my/decisions/{decision_id}/collaborate"): (
        ("POST", f"{A}/decisions/{{decision_id}}/collaborate"),
    ),
    ("POST", "/my/decisions/{decision_id}/{step}"): DECISION_STEPS,
    ("POST", f"{P}/decisions/{{decision_id}}/{{step}}"): (
        *DECISION_STEPS,
        ("POST", f"{A}/decisions/{{decision_id}}/questions/{{index}}/answered"),
    ),
    ("POST", f"{P}/decisions/{{decision_id}}/record"): (
        ("POST", f"{A}/decisions/{{decision_id}}/outcome"),
    ),
    # --- social needs -------------------------------------------------
    ("POST", f"{P}/social/referrals"): (("POST", f"{A}/referrals"),),
    ("POST", "/my/social/referrals"): (("POST", f"{A}/referrals"),),
    ("POST", f"{P}/social/referrals/{{referral_id}}/status"): (
        ("POST", f"{A}/referrals/{{referral_id}}/status"),
    ),
    ("POST", f"{P}/social/referrals/{{referral_id}}/link"): (
        ("POST", f"{A}/referrals/{{referral_id}}/link"),
    ),
    ("POST", "/my/social/referrals/{referral_id}/report"): (
        ("POST", f"{A}/referrals/{{referral_id}}/report"),
    ),
    ("POST", f"{P}/social/concerns/{{concern_id}}"): (
        ("POST", f"{A}/social-concerns/{{concern_id}}"),
    ),
    ("POST", f"{P}/social/concerns/{{concern_id}}/plan"): (
        ("POST", f"{A}/social-concerns/{{concern_id}}/plan"),
    ),
    ("POST", "/my/social/concerns/{concern_id}"): (
        ("POST", f"{A}/social-concerns/{{concern_id}}"),
    ),
    ("POST", "/referral-link/{token}"): (("POST", "/api/v1/referral-link/{token}"),),
    ("POST", "/directory/services"): (("POST", "/api/v1/directory/services"),),
    ("POST", "/directory/import"): (("POST", "/api/v1/directory/import"),),
}

SIGN_IN = "signing in and out is the browser session's; a program holds an API token"
CREDENTIALS = "credentials are set by the person in the browser, never by a token"
ADMIN = "administration of the organization (users, settings, rules, the outbox), page only"
EXEMPT: dict[tuple[str, str], str] = {
    ("POST", "/sign-in"): SIGN_IN,
    ("POST", "/sign-in/mfa"): SIGN_IN,
    ("POST", "/sign-out"): SIGN_IN,
    ("POST", "/account/sign-out-everywhere"): SIGN_IN,
    ("POST", "/account/mfa/setup"): CREDENTIALS,
    ("POST", "/account/password"): CREDENTIALS,
    # A token cannot make or revoke tokens: a leaked one could otherwise renew itself.
    ("POST", "/account/tokens"): CREDENTIALS,
    ("POST", "/account/tokens/{token_id}/revoke"): CREDENTIALS,
    # The language the pages are shown in; the API answers in the account's language.
    ("POST", "/account/language"): "the pages' display language (a browser preference)",
    ("POST", "/admin/users/new"): ADMIN,
    ("POST", "/admin/users/{user_id}"): ADMIN,
    ("POST", "/admin/users/{user_id}/reset-password"): ADMIN,
    ("POST", "/admin/users/{user_id}/reset-mfa"): ADMIN,
    ("POST", "/admin/settings"): ADMIN,
    ("POST", "/admin/risk-rules"): ADMIN,
    ("POST", "/admin/messages/{message_id}/retry"): ADMIN,
    # SMART App Launch: a person's consent to an app is part of signing in to it, and is
    # given only in person (the token endpoint is itself a program's door, like /fhir).
    ("POST", "/oauth2/authorize"): SIGN_IN,
}

CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


def _routes(tmp_path):
    app = create_app(Settings(env="test", database_url=f"sqlite:///{tmp_path / 't.db'}"))
    for route in app.routes:
        router = getattr(route, "original_router", None)
        for r in router.routes if router is not None else [route]:
            if isinstance(r, APIRoute):
                yield r


def _page_changes(routes) -> set[tuple[str, str]]:
    return {
        (m, r.path)
        for r in routes
        # CDS Hooks is a program's door like /api and /fhir, not a page.
        if not r.path.startswith(("/api/", "/fhir", "/cds-services", "/oauth2/token"))
        for m in r.methods & CHANGES
    }


def test_every_page_action_has_an_api_twin(tmp_path):
    routes = list(_routes(tmp_path))
    pages = _page_changes(routes)
    assert len(pages) > 60, "the app's page actions were not found"
    missing = sorted(pages - set(TWINS) - set(EXEMPT))
    assert missing == [], f"give these page actions an API twin (and a row in TWINS): {missing}"
    assert sorted((set(TWINS) | set(EXEMPT)) - pages) == [], "TWINS names pages the app lacks"
    assert not set(TWINS) & set(EXEMPT)
    program = {(m, r.path) for r in routes for m in r.methods}
    absent = sorted(
        (page, twin) for page, twins in TWINS.items() for twin in twins if twin not in program
    )
    assert absent == [], f"these twins are not routes of the app: {absent}"


def test_only_sign_in_credentials_and_administration_are_exempt():
    assert set(EXEMPT.values()) <= {SIGN_IN, CREDENTIALS, ADMIN} | {
        "the pages' display language (a browser preference)"
    }
    for (_, path), _reason in EXEMPT.items():
        assert path.startswith(("/sign-", "/account/", "/admin/", "/oauth2/authorize")), path


# A model a page reads its form with that no twin takes as a body, and why.
PAGE_ONLY_MODELS: dict[type, str] = {
    AnsweredIn: "the API names the question in its path (…/questions/{index}/answered)",
}


def _form_models(dependant: Any) -> set[type]:
    """The models a route's form is read with (FormOf keeps them on its dependency)."""
    found: set[type] = set()
    for dep in dependant.dependencies:
        found |= set(getattr(dep.call, "form_schemas", ()))
        found |= _form_models(dep)
    return found


def _body_model(route: APIRoute) -> type | None:
    return route.body_field.field_info.annotation if route.body_field is not None else None


def test_a_page_and_its_api_twin_read_the_same_model(tmp_path):
    routes = list(_routes(tmp_path))
    by_key = {(m, r.path): r for r in routes for m in r.methods}
    differ = []
    with_models = 0
    for page, twins in TWINS.items():
        page_models = _form_models(by_key[page].dependant) - set(PAGE_ONLY_MODELS)
        twin_models = {b for t in twins if (b := _body_model(by_key[t])) is not None}
        with_models += bool(page_models)
        if page_models != twin_models:
            differ.append(
                (
                    page,
                    sorted(m.__name__ for m in page_models),
                    sorted(m.__name__ for m in twin_models),
                )
            )
    assert differ == [], (
        "read these pages' forms with their twins' models, FormOf(Model) with the model the "
        f"API takes as its body (page, page's models, twins' models): {differ}"
    )
    assert with_models > 40, "the pages' form models were not found"


def test_a_page_only_model_is_read_by_a_page(tmp_path):
    used = set().union(*(_form_models(r.dependant) for r in _routes(tmp_path)))
    assert set(PAGE_ONLY_MODELS) <= used, "PAGE_ONLY_MODELS names a model no page reads"
