"""Provenance for what a person wrote in Concord beyond care plans (issue 21): Goals (their
last editor), the Observations scored from a check-in or questionnaire (who entered the answers,
and the patient when they answered), MedicationRequests and MedicationStatements (who last
wrote them). Each is made by the one function mapping.provenance, as a care plan's revisions
are; a care plan's come from its revisions (concord.fhir.service.plan_provenances).

Concord keeps no earlier versions of these resources, so each has one Provenance: the latest
write. Its id names the target: `goal-<id>`, `obs-<id>`, `medreq-<id>`, `medstmt-<id>`. An
Observation an EHR sent (imported) or a medication an integration client wrote has none here
(no person wrote it in Concord; imported resources carry their own tag).

These functions decide no access: they are given resources the caller has just read through
the search or read that decides it (and audits it); a Provenance read by id reads its target
that way first (concord.fhir.routes)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from concord.accounts.models import User
from concord.careplans import service as plans
from concord.fhir import mapping
from concord.measures import service as measures
from concord.medications import service as meds

# The types whose Provenance is made here, and the prefix of its id.
PREFIXES = {
    "Goal": "goal",
    "Observation": "obs",
    "MedicationRequest": "medreq",
    "MedicationStatement": "medstmt",
}
KINDS = {prefix: kind for kind, prefix in PREFIXES.items()}
ID_RE = re.compile(r"^(goal|obs|medreq|medstmt)-([0-9a-fA-F-]{36})$")


def target_of(ident: str) -> tuple[str, str] | None:
    """The (type, id) a Provenance id made here is about; None for any other id."""
    match = ID_RE.match(ident)
    if match is None:
        return None
    try:
        uuid.UUID(match.group(2))
    except ValueError:
        return None
    return KINDS[match.group(1)], match.group(2)


def _ids(resources: Iterable[dict[str, Any]], *kinds: str) -> dict[uuid.UUID, str]:
    found: dict[uuid.UUID, str] = {}
    for resource in resources:
        if resource.get("resourceType") in kinds:
            try:
                found[uuid.UUID(str(resource.get("id")))] = resource["resourceType"]
            except ValueError:
                continue  # an imported resource, under the sender's id
    return found


def _writer(user: User | None, patient: Any) -> dict[str, Any] | None:
    # A person only: an integration client (an EHR's feed) is not one.
    if user is None or user.is_client:
        return None
    return mapping.person_ref(user, patient)


def latest(session: Session, resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest Provenance of each resource given (of the types above) that a person
    wrote, in the order given."""
    resources = list(resources)
    out: dict[str, dict[str, Any]] = {}
    goals = _ids(resources, "Goal")
    for goal_id, (goal, patient, user) in plans.goal_writers(session, goals).items():
        made = mapping.provenance(
            f"goal-{goal_id}",
            f"Goal/{goal_id}/_history/{goal.version}",
            goal.updated_at,
            created=goal.version == 1,
            agents=[("author", _writer(user, patient))],
        )
        if made:
            out[f"Goal/{goal_id}"] = made
    observations = _ids(resources, "Observation")
    for obs_id, (obs, response, patient) in measures.observation_writers(
        session, observations
    ).items():
        enterer = response.entered_by
        agents = [("author", _writer(enterer, patient))]
        if response.answered_by == "patient" and enterer.id != patient.user_id:
            # The patient answered; someone else (a clinician, in a visit) entered it.
            patient_ref = {"reference": f"Patient/{patient.id}"}
            agents = [("enterer", agents[0][1]), ("informant", patient_ref)]
        made = mapping.provenance(
            f"obs-{obs_id}",
            f"Observation/{obs_id}",
            response.completed_at or response.updated_at,
            created=True,
            agents=agents,
            sources=[f"QuestionnaireResponse/{response.id}"],
        )
        if made:
            out[f"Observation/{obs_id}"] = made
    medications = _ids(resources, "MedicationRequest", "MedicationStatement")
    for med_id, (med, patient, user) in meds.medication_writers(session, medications).items():
        kind = medications[med_id]
        made = mapping.provenance(
            f"{PREFIXES[kind]}-{med_id}",
            f"{kind}/{med_id}",
            med.updated_at,
            created=med.version == 1,
            agents=[("author", _writer(user, patient))],
        )
        if made:
            out[f"{kind}/{med_id}"] = made
    return [
        out[key]
        for key in (f"{r.get('resourceType')}/{r.get('id')}" for r in resources)
        if key in out
    ]
