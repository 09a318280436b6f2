"""The CDS Hooks service's request and answer (CDS Hooks 2.0, https://cds-hooks.hl7.org; the HL7
PDDI CDS IG's use of order-select and order-sign): discovery, reading a hook request into
ingredient RxCUIs, and turning findings into cards. Pure functions, no database: the check
itself is concord.actions.medication_check. docs/cds-hooks.md describes the service.

A request Concord cannot read is refused whole (400) naming the field by its JSON path; a
medication it cannot code (no RxNorm code, or one not in the vocabulary) is never guessed at: it
is named in an info card as not checked.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from concord.errors import InvalidInput
from concord.i18n import Msg, translate
from concord.medications.rules import Finding
from concord.medications.vocabulary import Vocabulary

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SUMMARY_MAX = 140  # the spec: "<140 characters"
INDICATORS = {"contraindicated": "critical", "high": "warning", "moderate": "warning"}
# Names Concord's rule ids (concord/medications/interaction-rules.yaml); not an address.
RULES_SYSTEM = "urn:concord:medication-rules"

# A current-list entry counts while the medication is taken (or paused); drafts always count.
CURRENT_REQUEST = {"active", "on-hold"}
CURRENT_STATEMENT = {"active", "intended", "on-hold"}
PREFETCH_LISTS = {
    "medicationRequests": "MedicationRequest",
    "medicationStatements": "MedicationStatement",
}


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str


SERVICES = {
    s.id: s
    for s in (
        Service(
            "concord-medication-safety-select",
            "order-select",
            "Concord medication safety (order-select)",
            "Checks the medications being selected against each other, the other draft orders "
            "and the patient's current medications, with Concord's medication-safety rules "
            "(opioids, benzodiazepines and other CNS depressants, MOUD, QT, serotonergic drugs "
            "and MAO inhibitors, lithium, clozapine, antidepressants under 25).",
        ),
        Service(
            "concord-medication-safety-sign",
            "order-sign",
            "Concord medication safety (order-sign)",
            "Checks the orders about to be signed against each other and the patient's current "
            "medications, with Concord's medication-safety rules.",
        ),
    )
}

PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}&status=active,on-hold",
    "medicationStatements": (
        "MedicationStatement?patient={{context.patientId}}&status=active,on-hold"
    ),
}


def discovery() -> dict[str, Any]:
    return {
        "services": [
            {
                "hook": s.hook,
                "id": s.id,
                "title": s.title,
                "description": s.description,
                "prefetch": dict(PREFETCH),
                "usageRequirements": (
                    "Send a Concord API token with the cds scope as the bearer token. Send the "
                    "prefetch (the patient's current medications), or the patient's Concord id "
                    "as context.patientId for a token whose user is on the patient's care team. "
                    "Medications are read by RxNorm ingredient code."
                ),
            }
            for s in SERVICES.values()
        ]
    }


# --- the request -------------------------------------------------------------------------


@dataclass
class Order:
    reference: str | None  # "MedicationRequest/<id>", when it has an id
    rxcuis: tuple[str, ...]  # the ingredient codes found (known or not)
    where: str  # its JSON path, for messages


@dataclass
class HookRequest:
    hook: str
    hook_instance: str
    patient_id: str
    orders: list[Order]  # what is being checked (the selections, or every draft on sign)
    others: list[Order]  # the other draft orders (order-select)
    current: list[Order] | None  # from prefetch; None when the request carried no list
    birth_date: date | None
    unchecked: list[Order] = field(default_factory=list)


def _bad(where: str, problem: str) -> InvalidInput:
    return InvalidInput(Msg("The CDS Hooks request cannot be read."), errors={where: problem})


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(where, "must be a JSON object")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(where, "is required (text)")
    return value.strip()


def _codings(concept: Any, where: str) -> list[str]:
    if concept is None:
        return []
    concept = _object(concept, where)
    codings = concept.get("coding", [])
    if not isinstance(codings, list):
        raise _bad(f"{where}.coding", "must be a list")
    out = []
    for n, coding in enumerate(codings):
        coding = _object(coding, f"{where}.coding[{n}]")
        if coding.get("system") == RXNORM and coding.get("code") is not None:
            out.append(_text(coding.get("code"), f"{where}.coding[{n}].code"))
    return out


def _contained(resource: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    for item in resource.get("contained") or []:
        if isinstance(item, Mapping) and item.get("id") == ref[1:]:
            return item
    return None


def _medication_codes(resource: Mapping[str, Any], where: str) -> list[str]:
    """The RxNorm codes of a MedicationRequest or MedicationStatement: its
    medicationCodeableConcept, or a contained Medication's code and ingredients."""
    codes = _codings(
        resource.get("medicationCodeableConcept"), f"{where}.medicationCodeableConcept"
    )
    reference = resource.get("medicationReference")
    if reference is not None:
        ref = _object(reference, f"{where}.medicationReference").get("reference")
        medication = (
            _contained(resource, ref) if isinstance(ref, str) and ref.startswith("#") else None
        )
        if medication is not None:
            codes += _codings(medication.get("code"), f"{where}.contained.code")
            for n, part in enumerate(medication.get("ingredient") or []):
                if isinstance(part, Mapping):
                    codes += _codings(
                        part.get("itemCodeableConcept"), f"{where}.contained.ingredient[{n}]"
                    )
    return list(dict.fromkeys(codes))


def _bundle(value: Any, where: str, kinds: set[str]) -> list[tuple[Mapping[str, Any], str]]:
    bundle = _object(value, where)
    if bundle.get("resourceType") != "Bundle":
        raise _bad(f"{where}.resourceType", "must be Bundle")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise _bad(f"{where}.entry", "must be a list")
    out = []
    for n, entry in enumerate(entries):
        resource = _object(
            _object(entry, f"{where}.entry[{n}]").get("resource"), f"{where}.entry[{n}].resource"
        )
        kind = resource.get("resourceType")
        if not isinstance(kind, str):
            raise _bad(f"{where}.entry[{n}].resource.resourceType", "is required")
        if kind in kinds:
            out.append((resource, f"{where}.entry[{n}].resource"))
    return out


def _order(resource: Mapping[str, Any], where: str) -> Order:
    ident = resource.get("id")
    reference = f"{resource['resourceType']}/{ident}" if isinstance(ident, str) and ident else None
    return Order(reference, tuple(_medication_codes(resource, where)), where)


def _birth_date(patient: Any) -> date | None:
    if patient is None:
        return None
    patient = _object(patient, "prefetch.patient")
    if patient.get("resourceType") != "Patient":
        raise _bad("prefetch.patient.resourceType", "must be Patient")
    value = patient.get("birthDate")
    if value is None:
        return None
    try:
        return date.fromisoformat(_text(value, "prefetch.patient.birthDate"))
    except ValueError:
        # A year or year-month birthDate (FHIR allows them) gives no exact age: left out.
        return None


def parse(body: Any, service: Service) -> HookRequest:
    body = _object(body, "body")
    hook = _text(body.get("hook"), "hook")
    if hook != service.hook:
        raise _bad("hook", f"must be {service.hook} for the service {service.id}")
    instance = _text(body.get("hookInstance"), "hookInstance")
    context = _object(body.get("context"), "context")
    _text(context.get("userId"), "context.userId")
    patient_id = _text(context.get("patientId"), "context.patientId")
    drafts = [
        _order(r, w)
        for r, w in _bundle(
            context.get("draftOrders"), "context.draftOrders", {"MedicationRequest"}
        )
    ]
    if hook == "order-select":
        selections = context.get("selections")
        if not isinstance(selections, list) or not selections:
            raise _bad(
                "context.selections", "is required: a list of the selected orders' references"
            )
        chosen = {_text(s, f"context.selections[{n}]") for n, s in enumerate(selections)}
        orders = [d for d in drafts if d.reference in chosen]
        others = [d for d in drafts if d.reference not in chosen]
    else:
        orders, others = drafts, []
    prefetch = body.get("prefetch")
    prefetch = _object(prefetch, "prefetch") if prefetch is not None else {}
    current: list[Order] | None = None
    for key, kind in PREFETCH_LISTS.items():
        if prefetch.get(key) is None:
            continue  # not sent, or null: the EHR could not fetch it
        statuses = CURRENT_REQUEST if kind == "MedicationRequest" else CURRENT_STATEMENT
        current = current or []
        for resource, where in _bundle(prefetch[key], f"prefetch.{key}", {kind}):
            if resource.get("status") in statuses:
                current.append(_order(resource, where))
    return HookRequest(
        hook=hook,
        hook_instance=instance,
        patient_id=patient_id,
        orders=orders,
        others=others,
        current=current,
        birth_date=_birth_date(prefetch.get("patient")),
    )


def known(orders: Sequence[Order], vocabulary: Vocabulary) -> tuple[list[str], list[Order]]:
    """The usable ingredient codes of `orders`, and the orders with none (not checked)."""
    codes: list[str] = []
    unchecked = []
    for order in orders:
        usable = [c for c in order.rxcuis if vocabulary.get(c) is not None]
        codes += usable
        if not usable:
            unchecked.append(order)
    return list(dict.fromkeys(codes)), unchecked


# --- the answer ----------------------------------------------------------------------------


def _cut(text: str, limit: int = SUMMARY_MAX - 1) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def card(
    finding: Finding,
    *,
    orders: Sequence[Order],
    vocabulary: Vocabulary,
    lang: str = "en",
) -> dict[str, Any]:
    names = [
        (vocabulary.get(r) or vocabulary.entry(r)).label(lang)  # type: ignore[union-attr]
        for r in finding.rxcuis
    ]
    title = finding.title.get(lang) or finding.title["en"]
    detail = "\n\n".join(
        [
            translate(Msg("Medications: %(names)s.", names=" + ".join(names)), lang),
            finding.reason,
            translate(Msg("What to do: %(action)s", action=finding.action), lang),
            translate(Msg("Source: %(citation)s", citation=finding.source.citation), lang),
        ]
    )
    if finding.never_block:
        detail += "\n\n" + translate(
            Msg("This finding must not be used to stop or withhold the order."), lang
        )
    out: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": _cut(title),
        "indicator": INDICATORS.get(finding.severity, "info"),
        "detail": detail,
        "source": {
            "label": _cut(finding.source.citation, 200),
            "url": finding.source.url,
            "topic": {
                "system": RULES_SYSTEM,
                "code": finding.rule_id,
                "display": finding.title["en"],
            },
        },
    }
    if finding.suggestion == "remove-order":
        involved = set(finding.rxcuis)
        suggestions = []
        for order in orders:
            if order.reference is None or not involved & set(order.rxcuis):
                continue
            name = ", ".join(
                vocabulary.get(c).label(lang)  # type: ignore[union-attr]
                for c in order.rxcuis
                if c in involved
            )
            label = translate(Msg("Remove the new order for %(name)s", name=name), lang)
            suggestions.append(
                {
                    "label": label,
                    "uuid": str(uuid.uuid4()),
                    "isRecommended": False,
                    "actions": [
                        {"type": "delete", "description": label, "resourceId": [order.reference]}
                    ],
                }
            )
        if suggestions:
            out["suggestions"] = suggestions
            out["selectionBehavior"] = "at-most-one"
    return out


def unchecked_card(orders: Sequence[Order], lang: str = "en") -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _cut(
            translate(
                Msg(
                    "%(count)s medication(s) not checked: no RxNorm ingredient code Concord knows",
                    count=len(orders),
                ),
                lang,
            )
        ),
        "indicator": "info",
        "detail": translate(
            Msg(
                "Concord checks medications by RxNorm ingredient code. These could not be "
                "checked, so having no finding about them does not mean they are safe with "
                "the rest: %(which)s.",
                which=", ".join(o.reference or o.where for o in orders),
            ),
            lang,
        ),
        "source": {"label": "Concord medication-safety rules"},
    }


# --- feedback (CDS Hooks 2.0 "Feedback") ----------------------------------------------------

OUTCOMES = ("accepted", "overridden")


@dataclass(frozen=True)
class Feedback:
    card: str
    outcome: str
    reason_system: str | None  # the EHR's override reason, as a Coding
    reason_code: str | None
    comment: bool  # whether the clinician wrote a comment (its text is never kept in the trail)
    suggestions: int  # how many suggestions were accepted


def _timestamp(value: Any, where: str) -> None:
    text = _text(value, where)
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(where, "must be a date and time, e.g. 2026-12-07T14:05:00Z") from None


def parse_feedback(body: Any) -> list[Feedback]:
    """The feedback on cards an EHR sends back. Overriding a card needs a reason: a coded
    overrideReason.reason or the clinician's userComment (issue 19: overriding a finding needs a
    reason)."""
    body = _object(body, "body")
    items = body.get("feedback")
    if not isinstance(items, list) or not items:
        raise _bad("feedback", "is required: a list of the cards' outcomes")
    out = []
    for n, raw in enumerate(items):
        where = f"feedback[{n}]"
        item = _object(raw, where)
        card = _text(item.get("card"), f"{where}.card")
        outcome = item.get("outcome")
        if outcome not in OUTCOMES:
            raise _bad(f"{where}.outcome", f"must be one of {', '.join(OUTCOMES)}")
        _timestamp(item.get("outcomeTimestamp"), f"{where}.outcomeTimestamp")
        system = code = None
        comment = False
        if outcome == "overridden":
            reason = item.get("overrideReason")
            if not isinstance(reason, Mapping):
                raise _bad(
                    f"{where}.overrideReason",
                    "is required when a card is overridden: a reason or a comment",
                )
            coding = reason.get("reason")
            if coding is not None:
                coding = _object(coding, f"{where}.overrideReason.reason")
                code = _text(coding.get("code"), f"{where}.overrideReason.reason.code")[:64]
                raw_system = coding.get("system")
                system = str(raw_system)[:200] if raw_system else None
            user_comment = reason.get("userComment")
            comment = isinstance(user_comment, str) and bool(user_comment.strip())
            if code is None and not comment:
                raise _bad(
                    f"{where}.overrideReason",
                    "needs a reason (a coding) or a comment (userComment)",
                )
        accepted = item.get("acceptedSuggestions") or []
        if not isinstance(accepted, list):
            raise _bad(f"{where}.acceptedSuggestions", "must be a list")
        out.append(Feedback(card[:64], str(outcome), system, code, comment, len(accepted)))
    return out
