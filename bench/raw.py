"""The baselines of the page cases: the best raw SQL for the same rows the page shows.

Each page reads more than one table; the baseline reads every fact the page shows, in the
fewest statements plain SQL needs (correlated subqueries by index, no ORM, no Python between
them), on one open connection. The page does more than read (it signs the person in, works
out the flags, audits each patient shown and renders HTML); the ratio is the cost of that and
of how the page reads.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

# Score codes (LOINC) of the measures the caseload shows or judges by: PHQ-9 and GAD-7 totals
# always; PCL-5 for PTSD, AUDIT-C for substance use (concord.registry.caseload.PROGRAM_MEASURES).
PHQ9, GAD7, PCL5, AUDITC = "44261-6", "70274-6", "101698-9", "75626-2"


def _since(dialect: str) -> str:
    """The episode's start less 30 days (the baseline window), as concord.db.days_before."""
    return "date(e.started_on, '-30 days')" if dialect == "sqlite" else "(e.started_on - 30)"


def _end(code: str, order: str) -> str:
    return (
        "(SELECT o.id FROM measure_observation o WHERE o.patient_id = mine.patient_id "
        f"AND o.code = {code} AND o.effective_at >= mine.since "
        f"ORDER BY o.effective_at {order} LIMIT 1)"
    )


def caseload_statements(dialect: str) -> list[Any]:
    """A care manager's caseload (:cm, :org): one row per open episode with everything its
    row shows (names, first and latest PHQ-9, GAD-7 and the program's measure, open alerts,
    case reviews, pending recommendations, the plan's review and agreement), then the
    episodes' contacts (for last contact, next due and the flags), check-in schedules with
    their latest completion (for overdue check-ins), and what the consent decision reads
    (programs, episodes, corrections, consents, emergency accesses)."""
    program = (
        f"CASE mine.program WHEN 'ptsd' THEN '{PCL5}' WHEN 'substance_use' THEN '{AUDITC}' END"
    )
    ends = {
        "phq_first": _end(f"'{PHQ9}'", "ASC"),
        "phq_latest": _end(f"'{PHQ9}'", "DESC"),
        "gad_first": _end(f"'{GAD7}'", "ASC"),
        "gad_latest": _end(f"'{GAD7}'", "DESC"),
        "main_first": _end(program, "ASC"),
        "main_latest": _end(program, "DESC"),
    }
    points = ", ".join(
        f"{name}.value, {name}.band, {name}.effective_at, {name}.instrument" for name in ends
    )
    joins = " ".join(
        f"LEFT JOIN measure_observation {name} ON {name}.id = ends.{name}" for name in ends
    )
    rows = f"""
        WITH mine AS (
          SELECT e.id, e.patient_id, e.program, e.status, e.started_on, {_since(dialect)} AS since
          FROM episode e
          WHERE e.care_manager_id = :cm AND e.organization_id = :org AND e.ended_on IS NULL
            AND EXISTS (SELECT 1 FROM care_team t
                        JOIN care_team_member m ON m.care_team_id = t.id
                        WHERE t.patient_id = e.patient_id AND m.user_id = :cm
                          AND m.ended_at IS NULL)
        ), ends AS (
          SELECT mine.*, {", ".join(f"{sql} AS {name}" for name, sql in ends.items())}
          FROM mine
        )
        SELECT ends.id, ends.patient_id, ends.program, ends.status, ends.started_on,
               p.given_name, p.family_name, p.preferred_name, p.mrn, {points},
               (SELECT COUNT(*) FROM safety_alert a
                WHERE a.patient_id = ends.patient_id AND a.status <> 'closed') AS alerts,
               (SELECT COUNT(*) FROM case_review r
                WHERE r.episode_id = ends.id AND r.status = 'queued') AS queued,
               (SELECT MAX(r.reviewed_on) FROM case_review r
                WHERE r.episode_id = ends.id AND r.status = 'reviewed') AS reviewed_on,
               (SELECT COUNT(*) FROM review_recommendation x
                WHERE x.patient_id = ends.patient_id AND x.status = 'proposed') AS pending,
               (SELECT MIN(x.proposed_at) FROM review_recommendation x
                WHERE x.patient_id = ends.patient_id AND x.status = 'proposed') AS oldest,
               cp.status, cp.next_review_on,
               (SELECT COUNT(DISTINCT g.party) FROM plan_agreement g
                WHERE g.plan_id = cp.id
                  AND g.revision_number >= cp.substantive_revision_number) AS agreed
        FROM ends
        JOIN patient p ON p.id = ends.patient_id
        LEFT JOIN care_plan cp ON cp.patient_id = ends.patient_id
                              AND cp.status IN ('draft', 'active')
        {joins}
    """
    contacts = """
        SELECT c.episode_id, c.occurred_on, c.kind FROM registry_contact c
        JOIN episode e ON e.id = c.episode_id
        WHERE e.care_manager_id = :cm AND e.ended_on IS NULL AND c.voided_at IS NULL
    """
    schedules = """
        SELECT s.patient_id, s.instrument, s.every_days, s.start_on, s.end_on,
               (SELECT MAX(r.completed_at) FROM measure_response r
                WHERE r.patient_id = s.patient_id AND r.instrument = s.instrument
                  AND r.status = 'completed') AS last_done
        FROM measure_schedule s
        JOIN episode e ON e.patient_id = s.patient_id
        WHERE e.care_manager_id = :cm AND e.ended_on IS NULL AND s.stopped_at IS NULL
    """
    # What the consent decision reads for the caseload's patients (ADR 0021): the Part 2
    # programs and their staff, the patients' episodes (which make a patient a program's),
    # label corrections, active consents and emergency accesses.
    patients = """
        SELECT e.patient_id FROM episode e
        WHERE e.care_manager_id = :cm AND e.organization_id = :org AND e.ended_on IS NULL
    """
    decision = [
        """
        SELECT k.id, u.id FROM clinic k LEFT JOIN user_account u ON u.clinic_id = k.id
        WHERE k.organization_id = :org AND k.part2_program
        """,
        f"""
        SELECT x.id, x.patient_id, x.clinic_id, x.created_by_id, x.care_manager_id
        FROM episode x WHERE x.patient_id IN ({patients})
        """,
        f"""
        SELECT o.record_type, o.record_id, o.part2 FROM part2_label_override o
        WHERE o.patient_id IN ({patients}) ORDER BY o.at
        """,
        f"""
        SELECT c.* FROM consent c
        WHERE c.status = 'active' AND c.patient_id IN ({patients})
        """,
        f"""
        SELECT g.user_id, g.patient_id, g.expires_at FROM emergency_access g
        WHERE g.expires_at > CURRENT_TIMESTAMP AND g.patient_id IN ({patients})
        """,
    ]
    return [text(rows), text(contacts), text(schedules), *map(text, decision)]


def patient_statements() -> list[Any]:
    """One patient's overview (:p) as a team member (:u) sees it: the patient and their clinic
    (and that :u is on the team), the care team, the plans with their agreements, family and
    carers, the main scores for the table and chart, goals linked to a measure, the open
    episode (which measure is charted), open alerts with their people, the risk status; and
    what every clinician page shows at the top (the alerts :u owns, the team's count)."""
    return [
        text(
            """
            SELECT p.*, c.name AS clinic,
                   EXISTS (SELECT 1 FROM care_team t
                           JOIN care_team_member m ON m.care_team_id = t.id
                           WHERE t.patient_id = p.id AND m.user_id = :u
                             AND m.ended_at IS NULL) AS on_team
            FROM patient p JOIN clinic c ON c.id = p.clinic_id WHERE p.id = :p
            """
        ),
        text(
            """
            SELECT m.role, m.is_lead, u.name FROM care_team t
            JOIN care_team_member m ON m.care_team_id = t.id
            JOIN user_account u ON u.id = m.user_id
            WHERE t.patient_id = :p AND m.ended_at IS NULL
            """
        ),
        text(
            """
            SELECT cp.id, cp.title, cp.status, cp.activated_on, cp.next_review_on, cp.ended_on,
                   cp.end_reason, cp.substantive_revision_number, g.party, g.revision_number
            FROM care_plan cp LEFT JOIN plan_agreement g ON g.plan_id = cp.id
            WHERE cp.patient_id = :p ORDER BY cp.created_at DESC, g.revision_number DESC
            """
        ),
        text(
            """
            SELECT r.relationship_to_patient, r.consent_recorded_at, r.consent_withdrawn_at,
                   u.name, u.email
            FROM related_person r JOIN user_account u ON u.id = r.user_id
            WHERE r.patient_id = :p AND r.ended_at IS NULL
            """
        ),
        text(
            """
            SELECT o.instrument, o.value, o.band, o.effective_at, o.response_id
            FROM measure_observation o
            WHERE o.patient_id = :p AND o.score_id IN ('total', 'raw')
            ORDER BY o.effective_at
            """
        ),
        text(
            """
            SELECT g.statement, g.status, g.measure_instrument, g.measure_op, g.measure_value
            FROM goal g JOIN care_plan cp ON cp.id = g.plan_id
            WHERE cp.patient_id = :p AND cp.status IN ('draft', 'active')
              AND g.removed_at IS NULL AND g.measure_instrument IS NOT NULL
            """
        ),
        text("SELECT program, started_on FROM episode WHERE patient_id = :p AND ended_on IS NULL"),
        text(
            """
            SELECT a.id, a.tier, a.status, a.triggers, a.rule_id, a.created_at, a.due_at,
                   a.acknowledged_at, o.name AS owner, k.name AS acknowledged_by
            FROM safety_alert a
            LEFT JOIN user_account o ON o.id = a.owner_id
            LEFT JOIN user_account k ON k.id = a.acknowledged_by_id
            WHERE a.patient_id = :p AND a.status <> 'closed' ORDER BY a.created_at DESC
            """
        ),
        text("SELECT tier, since FROM risk_status WHERE patient_id = :p ORDER BY seq DESC LIMIT 1"),
        text(
            """
            SELECT a.id, a.tier, a.due_at, p.given_name, p.family_name, p.preferred_name
            FROM safety_alert a JOIN patient p ON p.id = a.patient_id
            WHERE a.owner_id = :u AND a.status = 'open' ORDER BY a.due_at LIMIT 5
            """
        ),
        text(
            """
            SELECT COUNT(*) FROM care_team_member m
            JOIN care_team t ON t.id = m.care_team_id
            JOIN safety_alert a ON a.patient_id = t.patient_id
            WHERE m.user_id = :u AND m.ended_at IS NULL AND a.status <> 'closed'
              AND (a.owner_id IS NULL OR a.owner_id <> :u OR a.status = 'acknowledged')
            """
        ),
    ]


def run_all(connection: Any, statements: list[Any], params: dict[str, Any]) -> list[list[Any]]:
    return [connection.execute(statement, params).all() for statement in statements]
