"""A decision made together as FHIR R4 (the mapping is ADR 0012):

- each decision aid is a Questionnaire (`{SYSTEM}/Questionnaire/decision-aid-{id}`) with three
  groups: what matters (a choice item per value, repeating), the SURE items (boolean), and the
  outcome (the options considered, the choice, the reasons);
- each decision is a QuestionnaireResponse `decision-{uuid}` answering it, with `basedOn` the
  CarePlan the choice went into and `author` the clinician who recorded it;
- the CarePlan names the responses in `supportingInfo`, and the activity made from a choice
  carries an extension pointing at its decision.
"""

from __future__ import annotations

import uuid
from typing import Any

from concord.decisions.aids import Aid, get_aid
from concord.decisions.labels import SURE_NAMES
from concord.decisions.models import Decision, DecisionStatus
from concord.fhir.mapping import SYSTEM, _date, _drop_empty, _instant, _ref

DECISION_EXTENSION = f"{SYSTEM}/StructureDefinition/decision"
VALUE_SYSTEM = f"{SYSTEM}/CodeSystem/decision-value"
OPTION_SYSTEM = f"{SYSTEM}/CodeSystem/decision-option"
PREFIX = "decision-"
SURE_TEXT = dict(SURE_NAMES)  # the items' names (English); the wording is OHRI's
STATUS = {
    DecisionStatus.open: "in-progress",
    DecisionStatus.decided: "completed",
    DecisionStatus.not_decided: "completed",
    DecisionStatus.withdrawn: "stopped",
}


def canonical(aid: Aid) -> str:
    return f"{SYSTEM}/Questionnaire/decision-aid-{aid.id}"


def questionnaire(aid: Aid) -> dict[str, Any]:
    options = [
        {"valueCoding": {"system": OPTION_SYSTEM, "code": o.id, "display": o.name["en"]}}
        for o in aid.options
    ]
    return {
        "resourceType": "Questionnaire",
        "id": f"decision-aid-{aid.id}",
        "url": canonical(aid),
        "version": aid.version,
        "name": "DecisionAid" + "".join(p.title() for p in aid.id.split("-")),
        "title": aid.title["en"],
        "status": "active",
        "date": aid.last_reviewed.isoformat(),
        "description": aid.summary["en"],
        "item": [
            {
                "linkId": "values",
                "text": "What matters most",
                "type": "choice",
                "repeats": True,
                "answerOption": [
                    {
                        "valueCoding": {
                            "system": VALUE_SYSTEM,
                            "code": v.id,
                            "display": v.label["en"],
                        }
                    }
                    for v in aid.values
                ],
            },
            {"linkId": "values-note", "text": "Anything else that matters", "type": "text"},
            {
                "linkId": "leaning",
                "text": "Option leaning toward",
                "type": "choice",
                "answerOption": options,
            },
            {
                "linkId": "sure",
                "text": "SURE test (Légaré et al. 2010)",
                "type": "group",
                "item": [
                    {"linkId": f"sure.{k}", "text": text, "type": "boolean"}
                    for k, text in SURE_TEXT.items()
                ],
            },
            {
                "linkId": "outcome",
                "text": "The decision",
                "type": "group",
                "item": [
                    {
                        "linkId": "outcome.considered",
                        "text": "Options considered",
                        "type": "choice",
                        "repeats": True,
                        "answerOption": options,
                    },
                    {
                        "linkId": "outcome.choice",
                        "text": "The choice (none: not decided yet)",
                        "type": "choice",
                        "answerOption": options,
                    },
                    {"linkId": "outcome.reasons", "text": "Reasons", "type": "text"},
                    {"linkId": "outcome.date", "text": "Date", "type": "date"},
                    {
                        "linkId": "outcome.participants",
                        "text": "Who took part",
                        "type": "string",
                        "repeats": True,
                    },
                ],
            },
        ],
    }


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"valueCoding": {"system": system, "code": code, "display": display}}


def response(decision: Decision, plan_id: uuid.UUID | None) -> dict[str, Any]:
    aid = get_aid(decision.aid_id)
    option_name = {o.id: o.name["en"] for o in aid.options} if aid else {}
    value_name = {v.id: v.label["en"] for v in aid.values} if aid else {}
    items: list[dict[str, Any]] = []
    if decision.values:
        items.append(
            {
                "linkId": "values",
                "answer": [_coding(VALUE_SYSTEM, v, value_name.get(v, v)) for v in decision.values],
            }
        )
    if decision.values_note:
        items.append({"linkId": "values-note", "answer": [{"valueString": decision.values_note}]})
    if decision.leaning:
        items.append(
            {
                "linkId": "leaning",
                "answer": [
                    _coding(OPTION_SYSTEM, decision.leaning, option_name.get(decision.leaning, ""))
                ],
            }
        )
    if decision.sure:
        items.append(
            {
                "linkId": "sure",
                "item": [
                    {"linkId": f"sure.{k}", "answer": [{"valueBoolean": bool(decision.sure[k])}]}
                    for k in SURE_TEXT
                    if k in decision.sure
                ],
            }
        )
    if decision.status in (DecisionStatus.decided, DecisionStatus.not_decided):
        outcome: list[dict[str, Any]] = [
            {
                "linkId": "outcome.considered",
                "answer": [
                    _coding(OPTION_SYSTEM, c, option_name.get(c, c)) for c in decision.considered
                ],
            }
        ]
        if decision.choice:
            outcome.append(
                {
                    "linkId": "outcome.choice",
                    "answer": [
                        _coding(
                            OPTION_SYSTEM, decision.choice, option_name.get(decision.choice, "")
                        )
                    ],
                }
            )
        if decision.reasons:
            outcome.append(
                {"linkId": "outcome.reasons", "answer": [{"valueString": decision.reasons}]}
            )
        if decision.decided_on:
            outcome.append(
                {"linkId": "outcome.date", "answer": [{"valueDate": _date(decision.decided_on)}]}
            )
        if decision.participants:
            outcome.append(
                {
                    "linkId": "outcome.participants",
                    "answer": [{"valueString": p["name"]} for p in decision.participants],
                }
            )
        items.append({"linkId": "outcome", "item": outcome})
    return _drop_empty(
        {
            "resourceType": "QuestionnaireResponse",
            "id": f"{PREFIX}{decision.id}",
            "meta": {
                "versionId": str(decision.version),
                "lastUpdated": _instant(decision.updated_at),
            },
            "questionnaire": f"{canonical(aid)}|{decision.aid_version}" if aid else None,
            "status": STATUS[DecisionStatus(decision.status)],
            "subject": _ref("Patient", decision.patient_id),
            "basedOn": [_ref("CarePlan", plan_id)]
            if plan_id and decision.intervention_id
            else None,
            "authored": _instant(decision.recorded_at or decision.updated_at),
            "author": _ref("Practitioner", decision.recorded_by_id)
            if decision.recorded_by_id
            else None,
            "item": items,
        }
    )
