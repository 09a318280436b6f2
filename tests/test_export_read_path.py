"""One read path for exports (issue 17): the CSV downloads, the safety-plan PDF and the email
text read only what a domain service's get_*/list_* function returned (that function takes the
actor, applies access and audits). A query written in export code fails here."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from concord.web.exports import EXPORT_HANDLERS, EXPORT_MODULES
from tests.db_reads import direct_reads, function_reads, module_reads, routes_of


@pytest.mark.parametrize("module", EXPORT_MODULES)
def test_export_module_has_no_query(module: str) -> None:
    assert module_reads(module) == [], f"{module} reads the database itself"


@pytest.mark.parametrize(("module", "name"), EXPORT_HANDLERS, ids=lambda v: str(v))
def test_export_handler_has_no_query(module: str, name: str) -> None:
    assert function_reads(module, name) == [], f"{module}.{name} reads the database itself"


def test_every_export_route_is_listed(app) -> None:
    """A route that answers with a file (.csv or .pdf) is export code: it must be listed, so
    the checks above cover it."""
    listed = {(m, n) for m, n in EXPORT_HANDLERS}
    missing = []
    seen = 0
    for route in routes_of(app):
        path = route.path  # type: ignore[attr-defined]
        if path.endswith((".csv", ".pdf")):
            seen += 1
            endpoint = route.endpoint  # type: ignore[attr-defined]
            if (endpoint.__module__, endpoint.__name__) not in listed:
                missing.append(path)
    assert seen >= 5 and missing == []


@pytest.mark.parametrize(
    "source",
    [
        "def f(session):\n    return session.execute(select(X))",
        "def f(session):\n    return session.get(Organization, 1)",
        "def f(request, session):\n    return request.state.session.scalars(q)",
        "from sqlalchemy import select",
        "from concord.patients.models import Patient",
    ],
)
def test_the_check_finds_a_query(source: str) -> None:
    assert direct_reads(ast.parse(source)) != []


def test_the_check_passes_a_service_call() -> None:
    source = "def f(session, acc):\n    return plans.get_plan_export(session, acc, 'en')"
    assert direct_reads(ast.parse(source)) == []


def test_worker_reminders_read_as_the_system_for_a_named_purpose(session, people) -> None:
    """The check-in reminder (a notice the worker queues) reads the patient through
    access.system_access with its purpose, and each reminder queued is audited as the system's
    (no actor), naming that purpose."""
    from sqlalchemy import select

    from concord.access import SystemPurpose, system_access
    from concord.audit.models import AuditEvent
    from concord.measures import service as measures
    from tests.conftest import commit
    from tests.factories import create_plan

    create_plan(session, people, activate=True)
    commit(session)
    assert measures.queue_reminders(session) == 2
    commit(session)
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "remind")).all()
    assert len(events) == 2
    assert {(e.actor_id, e.patient_id, e.detail["purpose"]) for e in events} == {
        (None, people.patient.id, "checkin_reminder")
    }
    # Deny by default: no purpose, no reach; an inactive patient is not reached either.
    unknown: Any = "anything"
    assert system_access(session, people.patient.id, purpose=unknown) is None
    people.patient.active = False
    session.flush()
    assert system_access(session, people.patient.id, purpose=SystemPurpose.checkin_reminder) is None
