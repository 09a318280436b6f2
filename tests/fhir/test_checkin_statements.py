"""The SQL statements of one FHIR check-in (POST /fhir/QuestionnaireResponse), counted: the
busiest write's cost in statements must not creep back up (issue 17; docs/performance.md
"Issue 17"). A patient with an open episode, scores, a check-in schedule and tasks brought
up to date by the nightly run, as a clinic's are; counted on the second check-in (the first
warms the process's caches)."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from concord.audit.service import set_context, write_pending
from concord.measures import service as measures
from concord.registry.jobs import sync_all_tasks
from tests.careplans.test_api import bearer
from tests.conftest import commit
from tests.factories import acc_for
from tests.fhir.test_fhir_measures import ehr_response
from tests.registry.test_caseload import caseload  # noqa: F401 (fixture)

# The most a check-in may run that read or write rows (transaction control is not counted:
# BEGIN, and the tests' SAVEPOINT and RELEASE). Here: the token, the patient and access, the
# duplicate check, the response and its score, the risk rules and the previous score, the
# task sync (the episode, schedules and open tasks in one; first and latest score with the
# check-ins done in one; the last review as Pat has a consultant's flag) and the audit chain
# (on SQLite the chain's head, the event and the head again; on PostgreSQL one call of
# concord_audit_append). Before: 17 and 15 (the check before the body read its own token
# row), then 16 and 14 (the task sync read its five facts one statement each).
MOST = {"sqlite": 13, "postgresql": 11}
CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT")


@pytest.fixture
def steady(session, people, caseload):  # noqa: F811
    """Pat's PHQ-9 scheduled every 14 days, and every patient's tasks up to date."""
    measures.add_schedule(
        session,
        access=acc_for(session, people.care_manager, people.patient),
        instrument_code="PHQ-9",
        every_days=14,
        start_on=None,
        end_on=None,
    )
    set_context(session, channel="system")
    sync_all_tasks(session)
    write_pending(session)
    commit(session)
    return bearer(session, people.care_manager)


def _post(client, token, patient_id, identifier):
    response = client.post(
        "/fhir/QuestionnaireResponse",
        json=ehr_response(patient_id, [2, 2, 1, 1, 1, 1, 1, 1, 0], identifier=identifier),
        headers={**token, "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 201, response.text[:300]


def test_one_fhir_check_in_runs_at_most_its_statements(client, session, people, steady):
    _post(client, steady, people.patient.id, "warm-up")
    statements: list[str] = []

    def counted(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(CONTROL):
            statements.append(" ".join(statement.split())[:120])

    event.listen(Engine, "before_cursor_execute", counted)
    try:
        _post(client, steady, people.patient.id, "counted")
    finally:
        event.remove(Engine, "before_cursor_execute", counted)
    engine = session.get_bind().dialect.name
    assert len(statements) <= MOST[engine], "\n".join(statements)
