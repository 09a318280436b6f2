"""The SQL statements of the three reads the benchmark times beside c7c4681 (issue 17's "no
case more than 10% slower"; docs/performance.md "Issue 17"): a FHIR Observation read, a FHIR
Observation search by patient and code, and a patient's page. Issue 18's disclosure decision
added five reads to each (the organization's Part 2 programs, the patient's episodes, label
corrections, consents, emergency accesses); they are one statement now, and a count must not
creep back up. Counted on the second request (the first warms the process's caches);
transaction control (BEGIN, the tests' SAVEPOINT and RELEASE) is not counted."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.fhir.test_fhir_measures import ehr_response, post, token  # noqa: F401 (fixture)

# The persona Pat has a consent on file, so the consents' rows are one statement more than
# for a patient with none (the benchmark's). Before this limit the decision's reads were five
# statements (programs, episodes, corrections, consents, emergency accesses), a search also
# counted its total, and the navigation asked for unread notices and the privacy officer's
# status apart: 11, 12 and 26 on SQLite; the patient page was 22 (20) while the imported
# record read its pending matches in a statement of its own. On SQLite the audit chain is
# three statements (its head, the event, the head again), on PostgreSQL one call of
# concord_audit_append. Issue 20: a search also returns the Observations the clinic's EHR sent
# (one SELECT of the patient's imported Observations), so the search is one statement more.
MOST = {
    "fhir_read": {"sqlite": 8, "postgresql": 6},
    "fhir_search": {"sqlite": 9, "postgresql": 7},
    "patient_page": {"sqlite": 21, "postgresql": 19},
}
CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT")


def _counted(fn):
    statements: list[str] = []

    def counted(conn, cursor, statement, parameters, context, executemany):
        if not statement.lstrip().upper().startswith(CONTROL):
            statements.append(" ".join(statement.split())[:120])

    fn()  # warm
    event.listen(Engine, "before_cursor_execute", counted)
    try:
        fn()
    finally:
        event.remove(Engine, "before_cursor_execute", counted)
    return statements


@pytest.fixture
def scores(client, people, token):  # noqa: F811
    for n, values in enumerate(([3] * 9, [2] * 9, [1] * 9)):
        body = ehr_response(people.patient.id, values, identifier=f"s{n}")
        body["authored"] = f"2026-11-{10 + n:02d}T10:00:00Z"
        assert post(client, body, token).status_code == 201
    search = f"/fhir/Observation?patient={people.patient.id}&code=44261-6"
    bundle = client.get(search, headers=token).json()
    return search, bundle["entry"][0]["resource"]["id"]


def _check(session, case, statements):
    engine = session.get_bind().dialect.name
    assert len(statements) <= MOST[case][engine], "\n".join(statements)


def test_a_fhir_read_runs_at_most_its_statements(client, session, token, scores):  # noqa: F811
    _, first = scores

    def read():
        assert client.get(f"/fhir/Observation/{first}", headers=token).status_code == 200

    _check(session, "fhir_read", _counted(read))


def test_a_fhir_search_runs_at_most_its_statements(client, session, token, scores):  # noqa: F811
    search, _ = scores

    def find():
        assert len(client.get(search, headers=token).json()["entry"]) == 3

    _check(session, "fhir_search", _counted(find))


def test_a_patient_page_runs_at_most_its_statements(
    client,
    session,
    people,
    sign_in,
    token,  # noqa: F811
    scores,
):
    sign_in(people.care_manager.email)

    def page():
        assert client.get(f"/patients/{people.patient.id}").status_code == 200

    _check(session, "patient_page", _counted(page))
