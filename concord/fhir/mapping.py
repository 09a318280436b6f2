"""Concord's records as FHIR R4 resources.

Everything emitted can be validated against the fhir.resources models (R4B, which is R4 for
these resources; see docs/adr/0005-fhir-r4-validated-with-r4b-models.md) before it leaves: in
the tests and outside production always, so an invalid resource is a bug caught here rather
than at the client.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import date, datetime
from html import escape
from typing import Any

from concord.accounts.models import User
from concord.careplans.history import PlanContents
from concord.careplans.models import (
    CODE_SYSTEM_URIS,
    ActionStep,
    CarePlan,
    CodeSystem,
    Goal,
    Intervention,
    PlanRevision,
)
from concord.dates import local_date
from concord.ehr.service import RESERVED_ID_PREFIXES
from concord.fhir.ehr import IMPORTED_TYPES
from concord.fhir.search import INCLUDES, REVINCLUDES, SEARCH_PARAMS, SORTS, capability_type
from concord.fhir.validators import VALIDATORS
from concord.labels import ROLE_LABELS, VALUE_LABELS
from concord.measures.library import library
from concord.measures.service import observation_code
from concord.patients.models import CareTeam, CareTeamMember, Patient

FHIR_VERSION = "4.0.1"
SYSTEM = "https://concord-care.org/fhir"
CAREPLAN_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
GOAL_CATEGORY = f"{SYSTEM}/CodeSystem/goal-category"


# A record of a 42 CFR Part 2 program (ADR 0021): the law (v3-ActCode 42CFRPart2), the
# obligation not to redisclose without consent (NORDSCLCD), and the confidentiality R.
PART2_SECURITY = (
    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"},
    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "NORDSCLCD"},
    {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"},
)
# An element-level label (HL7 FHIR Data Segmentation for Privacy IG, 1.0.0): on a part of a
# resource that is a Part 2 record when the rest is not (a CarePlan's activity or note).
INLINE_LABEL = (
    "http://hl7.org/fhir/uv/security-label-ds4p/StructureDefinition/extension-inline-sec-label"
)


def label_part2(resource: dict[str, Any]) -> dict[str, Any]:
    """`resource` with the Part 2 security labels in meta.security (added once)."""
    security = resource.setdefault("meta", {}).setdefault("security", [])
    security.extend(dict(c) for c in PART2_SECURITY if c not in security)
    return resource


def _inline_part2(element: dict[str, Any]) -> dict[str, Any]:
    """A part of a resource (an activity, a note) labelled Part 2 by the inline extension."""
    element.setdefault("extension", []).extend(
        {"url": INLINE_LABEL, "valueCoding": dict(c)} for c in PART2_SECURITY
    )
    return element


def validate(resource: dict[str, Any]) -> dict[str, Any]:
    """Raise if `resource` is not valid FHIR; return it unchanged."""
    VALIDATORS[resource["resourceType"]].model_validate(resource)
    return resource


def _instant(value: datetime) -> str:
    # Not strftime: its %Y writes year 1 as "1", which is not a FHIR instant.
    millis = f"{value.microsecond // 1000:03d}"
    return f"{value.year:04d}-" + value.strftime("%m-%dT%H:%M:%S.") + millis + "Z"


def _date(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _ref(kind: str, ident: Any, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"{kind}/{ident}"}
    if display:
        ref["display"] = display
    return ref


def person_ref(user: User | None, patient: Patient) -> dict[str, Any] | None:
    """A reference to a person that resolves here: a clinician as Practitioner, the patient
    themself as Patient, anyone else (a family member) by name only (Concord serves no
    RelatedPerson)."""
    if user is None:
        return None
    if user.is_clinician:
        return _ref("Practitioner", user.id, user.name)
    if patient.user_id is not None and patient.user_id == user.id:
        return _ref("Patient", patient.id, patient.display_name)
    return {"display": user.name}


def _drop_empty(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v not in (None, [], {}, "")}


def patient_resource(patient: Patient, mrn_system: str) -> dict[str, Any]:
    names: list[dict[str, Any]] = [
        {"use": "official", "family": patient.family_name, "given": [patient.given_name]}
    ]
    if patient.preferred_name:
        names.append({"use": "usual", "given": [patient.preferred_name]})
    telecom = []
    if patient.phone:
        telecom.append({"system": "phone", "value": patient.phone})
    if patient.email:
        telecom.append({"system": "email", "value": patient.email})
    return _drop_empty(
        {
            "resourceType": "Patient",
            "id": str(patient.id),
            "meta": {
                "versionId": str(patient.version),
                "lastUpdated": _instant(patient.updated_at),
            },
            "identifier": [
                {
                    "use": "usual",
                    "system": mrn_system,
                    "value": patient.mrn,
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "MR",
                            }
                        ],
                        "text": "Medical record number",
                    },
                }
            ],
            "active": patient.active,
            "name": names,
            "telecom": telecom,
            "gender": patient.gender,
            "birthDate": patient.birth_date.isoformat(),
            "communication": [
                {
                    "language": {
                        "coding": [{"system": "urn:ietf:bcp:47", "code": patient.language}]
                    },
                    "preferred": True,
                }
            ],
            "managingOrganization": {"display": patient.clinic.name},
        }
    )


def practitioner_resource(user: User) -> dict[str, Any]:
    parts = user.name.rsplit(" ", 1)
    name = {"text": user.name}
    if len(parts) == 2:
        name.update({"given": [parts[0]], "family": parts[1]})
    return {
        "resourceType": "Practitioner",
        "id": str(user.id),
        "active": user.active,
        "name": [name],
    }


def care_team_resource(
    team: CareTeam, patient: Patient, members: list[CareTeamMember]
) -> dict[str, Any]:
    participants = []
    for member in members:
        roles = [
            {
                "coding": [{"system": f"{SYSTEM}/CodeSystem/care-team-role", "code": member.role}],
                "text": ROLE_LABELS.get(member.role, member.role),
            }
        ]
        if member.is_lead:
            roles.append(
                {
                    "coding": [{"system": f"{SYSTEM}/CodeSystem/care-team-role", "code": "lead"}],
                    "text": "Lead",
                }
            )
        participants.append(
            {
                "role": roles,
                "member": person_ref(member.user, patient),
                "period": {"start": _instant(member.added_at)},
            }
        )
    # US Core: the patient is a member of their own care team, role SNOMED CT 116154003
    # "Patient (person)" (docs/clinical-sources.md, US Core CareTeam example).
    participants.append(
        {
            "role": [
                {
                    "coding": [
                        {
                            "system": "http://snomed.info/sct",
                            "code": "116154003",
                            "display": "Patient (person)",
                        }
                    ],
                    "text": "Patient",
                }
            ],
            "member": _ref("Patient", patient.id, patient.display_name),
        }
    )
    return _drop_empty(
        {
            "resourceType": "CareTeam",
            "id": str(team.id),
            "status": "active",
            "name": team.name,
            "subject": _ref("Patient", patient.id),
            "participant": participants,
            "managingOrganization": [{"display": patient.clinic.name}],
        }
    )


GOAL_LIFECYCLE = {
    "proposed": "proposed",
    "accepted": "accepted",
    "in_progress": "active",
    "achieved": "completed",
    "revised": "cancelled",
    "stopped": "cancelled",
}
GOAL_ACHIEVEMENT = {"in_progress": "in-progress", "achieved": "achieved"}
GOAL_STATUS_REASON = {"revised": "Replaced by a revised goal", "stopped": "Stopped"}


def _local_day(value: datetime, patient: Patient) -> str:
    """A FHIR date from an instant: the organization's local date (an evening's goal in
    Chicago started that day, not the next UTC day)."""
    day = local_date(value, patient.clinic.organization)
    assert day is not None
    return day.isoformat()


# A goal linked to a measure (careplans: below, at most, at least a score) as a Quantity's
# comparator, so a system can evaluate it against the Observations of that code.
GOAL_COMPARATORS = {"below": "<", "at_most": "<=", "at_least": ">="}


def _measured_target(goal: Goal) -> dict[str, Any] | None:
    """US Core Goal.target for a goal linked to a questionnaire's score: target.measure the
    code the score's Observations carry, detailQuantity the value with its comparator."""
    if not (goal.measure_instrument and goal.measure_op and goal.measure_value is not None):
        return None
    instrument = library().get(goal.measure_instrument)
    score = instrument.main_score if instrument else None
    comparator = GOAL_COMPARATORS.get(goal.measure_op)
    if instrument is None or score is None or comparator is None:
        return None
    code, system = observation_code(instrument, score)
    value = goal.measure_value
    return {
        "measure": {
            "coding": [{"system": system, "code": code}],
            "text": goal.measure or f"{instrument.code} {score.id}",
        },
        "detailQuantity": {
            "value": int(value) if float(value).is_integer() else value,
            "comparator": comparator,
            "unit": "{score}",
            "system": "http://unitsofmeasure.org",
            "code": "{score}",
        },
        "dueDate": _date(goal.due_on),
    }


def goal_resource(
    goal: Goal,
    patient: Patient,
    contents: PlanContents | None,
    labelled: Collection[uuid.UUID] = (),
    addresses: uuid.UUID | None = None,
) -> dict[str, Any]:
    """`labelled`: the ids of the goal and plan items that are Part 2 records (the goal, or a
    milestone shown in it, makes the whole Goal one). `addresses`: the social need the goal
    addresses, given only when the reader may see it (concord.social.service.concerns_shown);
    none, and Goal.addresses is left out."""
    target: dict[str, Any] = _drop_empty(
        _measured_target(goal)
        or {
            "measure": {"text": goal.measure} if goal.measure else None,
            "detailString": goal.target,
            "dueDate": _date(goal.due_on),
        }
    )
    milestones = []
    for milestone in contents.milestones_for(goal.id) if contents else []:
        parts = [{"url": "description", "valueString": milestone.description}]
        if milestone.target_on:
            parts.append({"url": "targetDate", "valueDate": milestone.target_on.isoformat()})
        if milestone.reached_on:
            parts.append({"url": "reachedDate", "valueDate": milestone.reached_on.isoformat()})
        milestones.append(
            {"url": f"{SYSTEM}/StructureDefinition/goal-milestone", "extension": parts}
        )
    achievement = GOAL_ACHIEVEMENT.get(goal.status)
    expressed_by = (
        _ref("Patient", patient.id)
        if goal.proposed_by_patient
        else person_ref(goal.proposed_by, patient)
    )
    shown = [goal.id, *(m.id for m in (contents.milestones_for(goal.id) if contents else []))]
    resource = _drop_empty(
        {
            "resourceType": "Goal",
            "id": str(goal.id),
            "meta": {"versionId": str(goal.version), "lastUpdated": _instant(goal.updated_at)},
            "extension": milestones,
            "lifecycleStatus": GOAL_LIFECYCLE[goal.status],
            "achievementStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/goal-achievement",
                        "code": achievement,
                    }
                ]
            }
            if achievement
            else None,
            "category": [
                {
                    "coding": [{"system": GOAL_CATEGORY, "code": goal.category}],
                    "text": VALUE_LABELS.get(goal.category, goal.category),
                }
            ],
            "priority": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/goal-priority",
                        "code": f"{goal.priority}-priority",
                    }
                ]
            },
            "description": {"text": goal.statement},
            "subject": _ref("Patient", patient.id),
            "startDate": _local_day(goal.created_at, patient),
            "target": [target] if target else None,
            "statusDate": _date(goal.status_changed_on),
            "statusReason": GOAL_STATUS_REASON.get(goal.status),
            "expressedBy": expressed_by,
            # The social need it addresses: the SDOH health concern's Condition (ADR 0030).
            "addresses": [
                {"reference": f"Condition/{RESERVED_ID_PREFIXES['Condition']}{addresses}"}
            ]
            if addresses
            else None,
        }
    )
    return label_part2(resource) if any(i in labelled for i in shown) else resource


ACTIVITY_STATUS = {
    "not_started": "not-started",
    "scheduled": "scheduled",
    "in_progress": "in-progress",
    "on_hold": "on-hold",
    "completed": "completed",
    "stopped": "stopped",
}
STEP_STATUS = {"to_do": "not-started", "done": "completed", "not_done": "stopped"}


def _intervention_activity(
    item: Intervention, patient: Patient, decision_id: uuid.UUID | None = None
) -> dict[str, Any]:
    detail = _drop_empty(
        {
            "code": {
                "coding": [{"system": f"{SYSTEM}/CodeSystem/intervention-kind", "code": item.kind}],
                "text": VALUE_LABELS.get(item.kind, item.kind),
            },
            "status": ACTIVITY_STATUS[item.status],
            "description": item.description,
            "performer": [person_ref(item.responsible, patient)] if item.responsible else None,
            "scheduledString": item.frequency,
            "goal": [_ref("Goal", item.goal_id)] if item.goal_id else None,
        }
    )
    if decision_id is None:
        return {"detail": detail}
    return {
        "extension": [
            {
                "url": f"{SYSTEM}/StructureDefinition/decision",
                "valueReference": _ref("QuestionnaireResponse", f"decision-{decision_id}"),
            }
        ],
        "detail": detail,
    }


def _step_activity(step: ActionStep, patient: Patient) -> dict[str, Any]:
    performer = (
        _ref("Patient", patient.id) if step.owner_is_patient else person_ref(step.owner, patient)
    )
    detail = _drop_empty(
        {
            "code": {
                "coding": [
                    {"system": f"{SYSTEM}/CodeSystem/intervention-kind", "code": "action-step"}
                ],
                "text": "Action step",
            },
            "status": STEP_STATUS[step.status],
            "description": step.description,
            "performer": [performer] if performer else None,
            "scheduledPeriod": {"end": step.due_on.isoformat()} if step.due_on else None,
            "goal": [_ref("Goal", step.goal_id)] if step.goal_id else None,
        }
    )
    return {"detail": detail}


def care_plan_resource(
    plan: CarePlan,
    patient: Patient,
    team: CareTeam | None,
    contents: PlanContents,
    latest: PlanRevision | None,
    decisions: dict[uuid.UUID, uuid.UUID] | None = None,
    author: User | None = None,
    labelled: Collection[uuid.UUID] = (),
) -> dict[str, Any]:
    """`decisions`: intervention id -> the decision made together that chose it; `author`:
    who created the plan; `labelled`: the ids of the items that are 42 CFR Part 2 records.
    A labelled concern's contained Condition carries the labels in its meta, a labelled
    activity or note inline (DS4P), and the CarePlan itself in its meta when it holds any
    (the high-water mark: a client that reads only meta.security still sees them)."""
    decisions = decisions or {}
    contained = []
    addresses = []
    for index, concern in enumerate(contents.concerns, start=1):
        code: dict[str, Any] = {"text": concern.description}
        if concern.code and concern.code_system:
            code["coding"] = [
                {"system": CODE_SYSTEM_URIS[CodeSystem(concern.code_system)], "code": concern.code}
            ]
        condition = {
            "resourceType": "Condition",
            "id": f"concern{index}",
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active" if concern.status == "active" else "resolved",
                    }
                ]
            },
            "code": code,
            "subject": _ref("Patient", patient.id),
        }
        contained.append(label_part2(condition) if concern.id in labelled else condition)
        addresses.append({"reference": f"#concern{index}", "display": concern.description})
    notes = []

    def note(item: Any, text: str) -> None:
        notes.append(_inline_part2({"text": text}) if item.id in labelled else {"text": text})

    for strength in contents.strengths:
        note(strength, f"Strength: {strength.description}")
    for barrier in contents.barriers:
        text = f"Barrier ({VALUE_LABELS.get(barrier.kind, barrier.kind)}): {barrier.description}"
        if barrier.way_around:
            text += f". Agreed way around it: {barrier.way_around}"
        note(barrier, text)
    for item in contents.contingencies:
        note(item, f"If {item.if_this}: {item.then_we}")
    for name, label in (
        ("what_matters_most", "What matters most"),
        ("treatment_preferences", "Treatment preferences"),
        ("cultural_considerations", "Cultural or faith considerations"),
        ("others_involved", "Who else may be involved"),
    ):
        value = getattr(plan, name)
        if value:
            notes.append({"text": f"{label}: {value}"})
    activities = [
        _labelled_activity(_intervention_activity(i, patient, decisions.get(i.id)), i, labelled)
        for i in contents.interventions
    ]
    activities += [
        _labelled_activity(_step_activity(s, patient), s, labelled) for s in contents.action_steps
    ]
    shown_goals = {f"Goal/{g.id}" for g in contents.goals}
    for activity in activities:
        # A goal withheld from the reader (a Part 2 program's) is not named by an activity.
        refs = [g for g in activity["detail"].get("goal", []) if g["reference"] in shown_goals]
        if refs:
            activity["detail"]["goal"] = refs
        else:
            activity["detail"].pop("goal", None)
    period = _drop_empty({"start": _date(plan.activated_on), "end": _date(plan.ended_on)})
    resource = _drop_empty(
        {
            "resourceType": "CarePlan",
            "id": str(plan.id),
            "meta": {
                "versionId": str(plan.revision_number),
                "lastUpdated": _instant(latest.created_at if latest else plan.created_at),
            },
            "text": _plan_narrative(plan, contents, labelled),
            "contained": contained,
            "status": plan.status,
            "intent": "plan",
            # US Core CarePlan: the assessment and plan of treatment.
            "category": [
                {
                    "coding": [
                        {
                            "system": CAREPLAN_CATEGORY,
                            "code": "assess-plan",
                            "display": "Assessment and Plan of Treatment",
                        }
                    ],
                    "text": "Assessment and Plan of Treatment",
                }
            ],
            "title": plan.title,
            "subject": _ref("Patient", patient.id),
            "period": period or None,
            "created": _instant(plan.created_at),
            "author": person_ref(author, patient) if author else None,
            "careTeam": [_ref("CareTeam", team.id)] if team else None,
            "addresses": addresses,
            "goal": [_ref("Goal", g.id) for g in contents.goals],
            "activity": activities,
            "supportingInfo": [
                _ref("QuestionnaireResponse", f"decision-{d}") for d in decisions.values()
            ],
            "note": notes,
        }
    )
    shown = [
        item.id
        for section in (
            "concerns",
            "goals",
            "milestones",
            "interventions",
            "action_steps",
            "strengths",
            "barriers",
            "contingencies",
        )
        for item in getattr(contents, section)
    ]
    return label_part2(resource) if any(i in labelled for i in shown) else resource


def _plan_narrative(
    plan: CarePlan, contents: PlanContents, labelled: Collection[uuid.UUID]
) -> dict[str, Any]:
    """The plan in words (US Core's CarePlan.text): its title, status and the goals shown; a
    goal that is a Part 2 record is counted, not quoted, since the narrative carries no
    label of its own."""
    goals = [g for g in contents.goals if g.id not in labelled]
    rows = "".join(f"<li>{escape(g.statement)}</li>" for g in goals)
    withheld = len(contents.goals) - len(goals)
    parts = [
        f"<p><b>{escape(plan.title)}</b> ({escape(str(plan.status))})</p>",
        f"<p>Goals:</p><ul>{rows}</ul>" if rows else "<p>No goals yet.</p>",
    ]
    if withheld:
        parts.append(f"<p>{withheld} more goal(s) under 42 CFR Part 2, in Goal resources.</p>")
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{"".join(parts)}</div>',
    }


PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def provenance(
    ident: str,
    target: str,
    recorded: datetime,
    *,
    created: bool,
    agents: Sequence[tuple[str, dict[str, Any] | None]],
    reason: str | None = None,
    sources: Sequence[str] = (),
) -> dict[str, Any] | None:
    """What Concord wrote and who wrote it: one Provenance (the one function every written
    resource's Provenance is made by). `target` the reference it is about (a version where
    the type keeps them); `agents` (participant type code, who) for the people involved, the
    first the author; `sources` the references it was made from. None when no person is
    known (Provenance.agent.who is required)."""
    people = [(code, who) for code, who in agents if who]
    if not people:
        return None
    return _drop_empty(
        {
            "resourceType": "Provenance",
            "id": ident,
            "target": [{"reference": target}],
            "recorded": _instant(recorded),
            "activity": {
                "coding": [{"system": DATA_OPERATION, "code": "CREATE" if created else "UPDATE"}]
            },
            "reason": [{"text": reason}] if reason else None,
            "agent": [
                {"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": code}]}, "who": who}
                for code, who in people
            ],
            "entity": [{"role": "source", "what": {"reference": ref}} for ref in sources],
        }
    )


def plan_provenance(plan: CarePlan, patient: Patient, revision: Any) -> dict[str, Any] | None:
    """One Provenance per revision of a plan (who, when, why), its target the version that
    revision made (CarePlan/[id]/_history/[n])."""
    return provenance(
        f"{plan.id}-r{revision.number}",
        f"CarePlan/{plan.id}/_history/{revision.number}",
        revision.created_at,
        created=revision.number == 1,
        agents=[("author", person_ref(revision.author, patient))],
        reason=revision.reason,
    )


def history_bundle(
    base: str, kind: str, ident: str, current: dict[str, Any], versions: list[tuple[int, datetime]]
) -> dict[str, Any]:
    """An instance's history (newest first): the current version with its resource, each
    earlier one by its version, time and ETag (Concord keeps earlier plans as snapshots for
    people to compare, not as FHIR resources; their Provenance says who changed what)."""
    now_version = int(current["meta"]["versionId"])
    return {
        "resourceType": "Bundle",
        "type": "history",
        "total": len(versions),
        "link": [{"relation": "self", "url": f"{base}/{kind}/{ident}/_history"}],
        "entry": [
            _drop_empty(
                {
                    "fullUrl": f"{base}/{kind}/{ident}",
                    "resource": current if number == now_version else None,
                    "request": {
                        "method": "POST" if number == 1 else "PUT",
                        "url": kind if number == 1 else f"{kind}/{ident}",
                    },
                    "response": {
                        "status": "201 Created" if number == 1 else "200 OK",
                        "etag": f'W/"{number}"',
                        "lastModified": _instant(when),
                    },
                }
            )
            for number, when in versions
        ],
    }


def _labelled_activity(
    activity: dict[str, Any], item: Any, labelled: Collection[uuid.UUID]
) -> dict[str, Any]:
    return _inline_part2(activity) if item.id in labelled else activity


def bundle(
    entries: list[dict[str, Any]],
    base: str,
    self_url: str,
    next_url: str | None,
    total: int | None = None,
    included: list[dict[str, Any]] | None = None,
    issues: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A searchset; `total` is every match across all pages (`next` leads through them);
    `included` are the resources _include or _revinclude asked for (search mode include)."""
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    result: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        result["total"] = total
    # An empty array is not valid FHIR JSON: no matches, no `entry`.
    return _drop_empty(
        {
            **result,
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in entries
            ]
            + [
                {
                    "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "include"},
                }
                for r in included or []
            ]
            + (
                [
                    {
                        "resource": {"resourceType": "OperationOutcome", "issue": issues},
                        "search": {"mode": "outcome"},
                    }
                ]
                if issues
                else []
            ),
        }
    )


RESOURCE_NOTES = {
    "QuestionnaireResponse": "A search returns completed responses to instruments only; a "
    "decision made together (QuestionnaireResponse/decision-{id}, listed in its CarePlan's "
    "supportingInfo) is read by id (ADR 0012).",
    "Observation": "Scores, newest first; with derived-from, also an Observation for each "
    "LOINC-coded answer of that response.",
    "Flag": "A search needs patient or subject.",
    "Task": "Safety alerts and the registry's tasks, for the care team only; and each "
    "social-needs referral's Task (id concord-referral-{id}, the SDOH Clinical Care IG's "
    "referral statuses, focus its ServiceRequest), for the care team and the patient, "
    "returned after the others.",
    "Measure": "CMS159 and CMS2 (docs/quality-measures.md). $evaluate-measure takes "
    "periodStart, periodEnd, and subject=Patient/[id] or reportType=population|subject-list; "
    "it reads the EHR's imported data of the patients the caller may read (an integration "
    "client with the quality scope: the organization's).",
    "Consent": "A patient's consents to share (42 CFR Part 2 where they cover substance-use "
    "records), for the care team and the patient; a search needs patient.",
    "MedicationRequest": "Medications prescribed here or imported from an EHR, coded with "
    "RxNorm; a search needs patient. Create accepts one from an EHR (the care team's token): "
    "the patient's whole list is checked, and the findings come back as an OperationOutcome "
    "unless Prefer: return=representation.",
    "MedicationStatement": "What the patient (or an EHR) says they take, over-the-counter "
    "medicines included; a search needs patient. Create as for MedicationRequest.",
}

# Imported types Concord also keeps of its own (concord.fhir.social), under ids an EHR may not
# send.
OWN_IMPORTED_TYPES = {
    "Condition": "Also the patient's social-needs health concerns (id concord-sdoh-{id}; "
    "category US Core health-concern and the SDOH Clinical Care IG's domain), read and "
    "searched (after the imported ones) by the care team and the patient; category narrows "
    "both.",
    "ServiceRequest": "Also the patient's referrals to community services (id "
    "concord-referral-{id}; category the SDOH Clinical Care IG's domain; its Task is "
    "Task/concord-referral-{id}), read and searched (after the imported ones) by the care team "
    "and the patient; category narrows both.",
    "Procedure": "Also the PDMP checks of the patient's opioid use disorder care (id "
    "concord-pdmp-{id}; SNOMED CT 461621000124108, as the CDC opioid guideline IG's "
    "PDMPReviewProcedure; outcome.text the result as recorded), read and searched (after the "
    "imported ones) by the care team and the patient, labelled 42CFRPart2 when a Part 2 "
    "program's record; date (a date, on performed), status and code narrow both.",
}
# The search parameters an imported type takes besides patient (each type's own, above).
IMPORTED_PARAMS = {
    "Condition": {"category": "token"},
    "ServiceRequest": {"category": "token"},
    "Procedure": {"date": "date", "status": "token", "code": "token"},
}


# What US Core (6.1) asks that Concord does not do yet, said rather than implied.
US_CORE_GAPS = (
    "Not met of US Core: Observation.interpretation uses Concord's own severity-band codes, "
    "not v3-ObservationInterpretation; CareTeam roles of staff are Concord's, not SNOMED CT "
    "(the patient is listed as a participant, SNOMED CT 116154003); Goal.target is coded "
    "(target.measure, detailQuantity) only for goals linked to a questionnaire's score, text otherwise; Provenance is "
    "written for what a person wrote in Concord (care plans, goals, scored observations, "
    "medications), not for other resources nor for what an EHR sent; Patient lacks race, ethnicity and address; name search is "
    "not accent-insensitive; vread serves the current version only (earlier care plans are "
    "listed by CarePlan/[id]/_history); Patient/$everything takes _type and _count, not "
    "start, end or _since; Observation has "
    "no meta.lastUpdated although _lastUpdated searches when its response was stored; "
    "SMART scopes and launch are documented separately."
)
BULK_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
BULK_PATIENT_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
BULK_GROUP_EXPORT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"


def capability_statement(base: str, software_version: str) -> dict[str, Any]:
    resources = []
    for kind, params in SEARCH_PARAMS.items():
        interactions = [{"code": "read"}, {"code": "search-type"}]
        if kind in ("QuestionnaireResponse", "MedicationRequest", "MedicationStatement"):
            interactions.append({"code": "create"})
        if kind == "Patient":
            interactions += [{"code": "create"}, {"code": "update"}]
        if kind in ("Patient", "CarePlan", "Goal"):
            interactions.append({"code": "vread"})
        if kind == "CarePlan":
            interactions.append({"code": "history-instance"})
        notes = [RESOURCE_NOTES[kind]] if kind in RESOURCE_NOTES else []
        if kind in SORTS:
            notes.append("_sort: " + ", ".join(SORTS[kind]) + " (-key descending).")
        resources.append(
            {
                "type": kind,
                **({"documentation": " ".join(notes)} if notes else {}),
                **(
                    {"versioning": "versioned", "readHistory": kind == "CarePlan"}
                    if kind in ("Patient", "CarePlan", "Goal")
                    else {}
                ),
                **({"searchInclude": list(INCLUDES[kind])} if kind in INCLUDES else {}),
                **({"searchRevInclude": list(REVINCLUDES[kind])} if kind in REVINCLUDES else {}),
                "interaction": interactions,
                "searchParam": [
                    {"name": name, "type": capability_type(kind, name)} for name in params
                ]
                + [
                    {"name": "_count", "type": "number"},
                    {"name": "_summary", "type": "token"},
                    {"name": "_elements", "type": "string"},
                    {"name": "_total", "type": "token"},
                ],
            }
        )
        if kind in ("QuestionnaireResponse", "Patient"):
            resources[-1]["conditionalCreate"] = True  # If-None-Exist: identifier=[system]|value
        if kind == "Patient":
            resources[-1]["updateCreate"] = False
            resources[-1]["conditionalUpdate"] = False
            resources[-1]["operation"] = [
                {
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                }
            ]
        if kind == "Measure":
            resources[-1]["operation"] = [
                {
                    "name": "evaluate-measure",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
                }
            ]
    resources.append({"type": "Practitioner", "interaction": [{"code": "read"}]})
    resources.append(
        {
            "type": "Provenance",
            "documentation": "One for each revision of a care plan (who, when, why), read by "
            "id ([plan id]-r[n]) or with CarePlan?_revinclude=Provenance:target; the care "
            "team's. For a Goal, a scored Observation, a MedicationRequest or a "
            "MedicationStatement, one for its latest write by a person (goal-[id], obs-[id], "
            "medreq-[id], medstmt-[id]), read by id or with _revinclude=Provenance:target, as "
            "its target is read. Not written for other resources nor for what an EHR sent.",
            "interaction": [{"code": "read"}],
        }
    )
    # Bulk Data Access IG 2.0 (docs/bulk-export.md).
    for entry in resources:
        if entry["type"] == "Patient":
            entry.setdefault("operation", []).append(
                {"name": "patient-export", "definition": BULK_PATIENT_EXPORT}
            )
    resources.append(
        {
            "type": "Group",
            "documentation": "A Group per care team (its id) and per collaborative-care "
            "program (program-<name>), members as the caller may read them.",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [],  # GET /fhir/Group lists them all; any parameter is refused
            "operation": [{"name": "group-export", "definition": BULK_GROUP_EXPORT}],
        }
    )
    for kind in sorted(IMPORTED_TYPES):
        resources.append(
            {
                "type": kind,
                "documentation": "Imported from the clinic's EHR (POST a transaction or batch "
                "Bundle to the base), served as sent; a search needs patient."
                + (f" {OWN_IMPORTED_TYPES[kind]}" if kind in OWN_IMPORTED_TYPES else ""),
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [{"name": "patient", "type": "reference"}]
                + [
                    {"name": name, "type": kind_}
                    for name, kind_ in IMPORTED_PARAMS.get(kind, {}).items()
                ],
            }
        )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "Concord",
        "kind": "instance",
        "software": {"name": "Concord", "version": software_version},
        "implementation": {"description": "Concord FHIR API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Every request needs an API token: Authorization: Bearer <token> "
                "(concord token create --email E). Records outside the caller's "
                "care teams are answered as not found. Searches: a comma means OR, a "
                "repeated parameter means AND, tokens take system|code, |code or system|; "
                "_summary takes true, false, data or count; _format only JSON. Any other "
                "parameter or modifier is refused (400, not-supported), never ignored.",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ],
                            "text": "Bearer token",
                        }
                    ],
                    "description": "Bearer tokens issued by Concord.",
                },
                "resource": resources,
                # An integration client's import (docs/ehr-import.md).
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "operation": [{"name": "export", "definition": BULK_EXPORT}],
            }
        ],
    }
