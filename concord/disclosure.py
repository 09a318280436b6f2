"""May this actor see this *kind* of data about this patient, for this purpose?

`concord.access` answers "may this actor reach this patient" (and how: as the care team, as
the patient, as a family member the patient chose). This module answers the next question, for
every record a domain service returns: the record's data category (`concord.categories`), the
purpose of the read, and the relation `access` found, looked up in one table, `RULES`.

Deny by default: a relation, purpose or category the table does not name is refused, and so is
anything the table lists with no category for it. The table today gives every answer Concord
gave before it existed (the team sees the whole record, the patient their own record, a family
member the care plan and, when shared, the safety plan); issue 18 (consent, 42 CFR Part 2)
narrows it per patient.

Reads decide per category, never per row: a list asks `decide` once for each category it holds
(`filter_records`), or turns the permitted categories into a query clause before it runs
(`permitted`), so a count or a page of search results never includes what is withheld.
Every withholding is audited (`filter_records`: one event per request with the counts;
`check_record`/`require`: the NotFound a stranger gets, and a line in the trail).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.orm import Session

from concord.access import PatientAccess, Relation
from concord.accounts.models import User
from concord.audit.models import Outcome
from concord.audit.service import record
from concord.categories import DataCategory, Purpose
from concord.consents.models import Consent, ConsentState, GranteeKind, Provision
from concord.errors import NotFound
from concord.i18n import Msg
from concord.part2 import labels

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

_NONE: frozenset[DataCategory] = frozenset()
# Everything Concord holds about a patient's care. Psychotherapy notes are outside it: HIPAA
# (45 CFR 164.508(a)(2)) sets them apart from the record; no rule permits them.
_RECORD = frozenset(DataCategory) - {DataCategory.psychotherapy_notes}

RULES: Mapping[Relation, Mapping[Purpose, frozenset[DataCategory]]] = {
    # A clinician on the patient's current care team.
    Relation.team: {
        Purpose.treatment: _RECORD,
        # Billing reads the program's minutes and who the patient is, nothing more.
        Purpose.payment: frozenset({DataCategory.general, DataCategory.mental_health}),
        Purpose.operations: _RECORD,
        Purpose.research: _NONE,
        Purpose.patient_access: _NONE,
        Purpose.family_sharing: _NONE,
        # Breaking the glass grants nothing beyond treatment while treatment withholds nothing.
        Purpose.emergency: _RECORD,
    },
    # The patient, reading their own record (HIPAA right of access, 164.524: the designated
    # record set, psychotherapy notes excepted).
    Relation.self: {
        Purpose.treatment: _NONE,
        Purpose.payment: _NONE,
        Purpose.operations: _NONE,
        Purpose.research: _NONE,
        Purpose.patient_access: _RECORD,
        Purpose.family_sharing: _NONE,
        Purpose.emergency: _NONE,
    },
    # A person the patient chose: the care plan (with their consent, which access checks), and
    # the safety plan where the patient shared it (safety.plans checks the share). The name
    # shown as the subject of what is shared goes with it; the record beyond (`general`:
    # registration, team, family) stays withheld, as access.record_access already answers.
    Relation.related: {
        Purpose.treatment: _NONE,
        Purpose.payment: _NONE,
        Purpose.operations: _NONE,
        Purpose.research: _NONE,
        Purpose.patient_access: _NONE,
        Purpose.family_sharing: frozenset({DataCategory.care_plan, DataCategory.safety_plan}),
        Purpose.emergency: _NONE,
    },
}

# The purpose a read has when its door names none: what each relation reads for.
DEFAULT_PURPOSE: Mapping[Relation, Purpose] = {
    Relation.team: Purpose.treatment,
    Relation.self: Purpose.patient_access,
    Relation.related: Purpose.family_sharing,
}

# A door may name the purpose of use (the API and FHIR doors: the X-Purpose-Of-Use header) as a
# v3 PurposeOfUse code (http://terminology.hl7.org/CodeSystem/v3-ActReason); the seven
# purposes and their codes (docs/part2-sources.md says which were confirmed where).
PURPOSE_OF_USE: Mapping[str, Purpose] = {
    "TREAT": Purpose.treatment,
    "HPAYMT": Purpose.payment,
    "HOPERAT": Purpose.operations,
    "HRESCH": Purpose.research,
    "PATRQT": Purpose.patient_access,
    "FAMRQT": Purpose.family_sharing,
    "ETREAT": Purpose.emergency,
}
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
REQUESTED = "purpose_of_use"  # session.info: the purpose the request's door named


def purpose_of_use(code: str) -> Purpose | None:
    """The purpose a PurposeOfUse code names ("TREAT", or "<v3-ActReason system>|TREAT"), or
    None for a code Concord does not know."""
    system, _, value = code.strip().rpartition("|")
    if system and system != ACT_REASON:
        return None
    return PURPOSE_OF_USE.get(value)


def requested_purpose(session: Session | None) -> Purpose | None:
    """The purpose this request's door named, if it named one."""
    return session.info.get(REQUESTED) if session is not None else None


@dataclass(frozen=True)
class Decision:
    """The answer, and why, as a code (never patient data: it may be written to the trail).
    `part2`: a 42 CFR Part 2 record disclosed outside its program; `consent_id`: the consent
    that permitted it; `emergency`: disclosed under an emergency access (break the glass)."""

    permit: bool
    reason: str
    # Issue 18 (the consent-aware decision fills these; the defaults are today's answers):
    part2: bool = False  # a 42 CFR Part 2 record disclosed outside the Part 2 program
    consent_id: uuid.UUID | None = None  # the consent that permits it
    emergency: bool = False  # break the glass (Purpose.emergency, stated reason)

    def __bool__(self) -> bool:
        return self.permit


PERMITTED = Decision(True, "permitted")


# --- disclosure listeners (issue 18) -------------------------------------------------------
# Who is told of a disclosure: `filter_records` and `check_record` call every registered
# listener once per call, with the permitted records' decisions, so a disclosure log (concord.
# disclosures) can write who received what under which consent. Listeners register at import;
# the list is empty by default (a no-op). A listener must not raise for a permitted read.


@dataclass(frozen=True)
class Disclosed:
    """Records of one category and kind that a read disclosed, and the decision that let it."""

    object_type: str
    category: DataCategory | None
    decision: Decision
    count: int
    purpose: Purpose | None


DisclosureListener = Callable[[Session, PatientAccess, list[Disclosed]], None]
_LISTENERS: list[DisclosureListener] = []


def register_disclosure_listener(fn: DisclosureListener) -> DisclosureListener:
    """Call `fn(session, access, disclosed)` after every permitted read (idempotent)."""
    if fn not in _LISTENERS:
        _LISTENERS.append(fn)
    return fn


def on_disclosed(session: Session, access: PatientAccess, disclosed: list[Disclosed]) -> None:
    """Tell every listener what a read disclosed (nothing when nothing was)."""
    if not disclosed:
        return
    for fn in tuple(_LISTENERS):
        fn(session, access, disclosed)


def _purpose_of(access: PatientAccess, purpose: Purpose | str | None) -> Purpose | None:
    return _as(Purpose, default_purpose(access) if purpose is None else purpose)


def _as(kind: type[Any], value: Any) -> Any:
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except (ValueError, TypeError):
        return None


def decide_for(relation: Any, category: Any, purpose: Any) -> Decision:
    """The table's answer for a relation, a category and a purpose; deny by default."""
    relation = _as(Relation, relation)
    if relation is None:
        return Decision(False, "unknown_relation")
    category = _as(DataCategory, category)
    if category is None:
        return Decision(False, "unknown_category")
    purpose = _as(Purpose, purpose)
    if purpose is None:
        return Decision(False, "unknown_purpose")
    by_purpose = RULES.get(relation)
    if by_purpose is None:
        return Decision(False, "no_rule_for_relation")
    allowed = by_purpose.get(purpose)
    if allowed is None:
        return Decision(False, "no_rule_for_purpose")
    if category not in allowed:
        return Decision(False, "category_not_permitted")
    return PERMITTED


def default_purpose(access: PatientAccess) -> Purpose:
    """The purpose the request's door named (X-Purpose-Of-Use), else the relation's: treatment
    for the care team, the patient's own access, a family member's sharing."""
    named = requested_purpose(Session.object_session(access.patient))
    return named if named is not None else DEFAULT_PURPOSE[access.relation]


def _context(session: Session | None, access: PatientAccess) -> labels.Context | None:
    if session is None:
        session = Session.object_session(access.patient)
    if session is None:
        return None
    return labels.context(session, access.patient.organization_id, [access.patient.id])


def decide(
    access: PatientAccess,
    category: DataCategory | str | None,
    purpose: Purpose | str | None = None,
    *,
    label: labels.Label | None = None,
    session: Session | None = None,
) -> Decision:
    """May `access.by` see data of `category` about `access.patient`, for `purpose` (by default
    the one their relation reads for), given the record's Part 2 `label` and the patient's
    consents? The one decision every read of patient data asks (ADR 0021,
    docs/adr/0021-consent-decision-and-42-cfr-part-2.md)."""
    chosen = default_purpose(access) if purpose is None else purpose
    ctx = _context(session, access)
    return consent_decision(
        access.by,
        access.relation,
        access.patient.id,
        category,
        chosen,
        label or labels.UNLABELLED,
        ctx,
    )


# How specific a consent's recipient is: a named person beats a clinic, a clinic the care
# team, the care team "my treating providers".
_SPECIFIC = {
    GranteeKind.user: 3,
    GranteeKind.related_person: 3,
    GranteeKind.organization: 2,
    GranteeKind.care_team: 1,
    GranteeKind.treating_providers: 0,
}


def _names(consent: Consent, by: User, relation: Relation) -> bool:
    """Whether the consent's recipient is `by` (in the relation they have)."""
    kind = consent.grantee_kind
    if kind in (GranteeKind.user, GranteeKind.related_person):
        return consent.grantee_user_id is not None and consent.grantee_user_id == by.id
    if relation != Relation.team:
        return False
    if kind == GranteeKind.organization:
        return consent.grantee_clinic_id is not None and consent.grantee_clinic_id == by.clinic_id
    # The care team, "my treating providers": a clinician on the patient's current team.
    return kind in (GranteeKind.care_team, GranteeKind.treating_providers)


def _covers(consent: Consent, kinds: frozenset[str], *, all_of: bool) -> bool:
    if consent.scope == "all":
        return True
    named = set(consent.categories or [])
    return kinds <= named if all_of else bool(kinds & named)


def _rank(consent: Consent) -> tuple[int, int]:
    return (_SPECIFIC.get(consent.grantee_kind, 0), 0 if consent.scope == "all" else 1)


def consent_decision(
    by: User,
    relation: Relation | str,
    patient_id: uuid.UUID,
    category: DataCategory | str | None,
    purpose: Purpose | str,
    label: labels.Label,
    ctx: labels.Context | None,
) -> Decision:
    """The decision, in its order (ADR 0021): the table; the patient's own access; consents
    that deny (deny overrides permit unless a strictly more specific permit names the
    recipient); Part 2 records: the program's own staff, else a permit covering them; an
    active emergency access opens what consent withholds from the team.

    Decided once per question from the same context (`ctx.decided`): the answer depends on
    the patient only through their consents and `by`'s emergency access, so for a patient
    with neither the question is the same for every patient of the context."""
    if ctx is None:
        return _consent_decision(by, relation, patient_id, category, purpose, label, ctx)
    personal = patient_id in ctx.consents or (by.id, patient_id) in ctx.emergencies
    key = (
        id(RULES),  # the table in force (a test may swap it within a request)
        by.id,
        by.clinic_id,
        relation,
        patient_id if personal else None,
        category,
        purpose,
        label,
    )
    answer = ctx.decided.get(key)
    if answer is None:
        answer = ctx.decided[key] = _consent_decision(
            by, relation, patient_id, category, purpose, label, ctx
        )
    return answer


def _consent_decision(
    by: User,
    relation: Relation | str,
    patient_id: uuid.UUID,
    category: DataCategory | str | None,
    purpose: Purpose | str,
    label: labels.Label,
    ctx: labels.Context | None,
) -> Decision:
    base = decide_for(relation, category, purpose)
    relation = _as(Relation, relation)
    purpose = _as(Purpose, purpose)
    category = _as(DataCategory, category)
    if not base.permit or relation is None or purpose is None or category is None:
        return base
    if relation == Relation.self:
        return base  # the patient's own record
    part2 = label.part2
    internal = part2 and by.clinic_id is not None and by.clinic_id in label.programs
    grant = ctx.emergency(by.id, patient_id) if ctx is not None else None
    if purpose == Purpose.emergency:
        if relation != Relation.team or grant is None:
            return Decision(False, "no_emergency_access")
        return Decision(True, "emergency_access", part2=part2 and not internal, emergency=True)
    consents = ctx.consents.get(patient_id, []) if ctx is not None else []
    at = ctx.at if ctx is not None else None
    kinds = frozenset({str(category)} | ({"substance_use"} if part2 else set()))
    matching = [
        c
        for c in consents
        if at is not None
        and c.state(at) == ConsentState.active
        and _names(c, by, relation)
        and str(purpose) in (c.purposes or [])
    ]
    denies = [
        c
        for c in matching
        if c.provision == Provision.deny
        and category != DataCategory.general
        and _covers(c, kinds, all_of=False)
    ]
    # A permit for a Part 2 record must cover substance-use records (or the whole record).
    need = kinds if part2 else frozenset({str(category)})
    permits = [
        c for c in matching if c.provision == Provision.permit and _covers(c, need, all_of=True)
    ]
    permits.sort(key=lambda c: (_rank(c), c.recorded_at), reverse=True)
    best = permits[0] if permits else None
    if denies:
        top = max(_rank(c) for c in denies)
        if best is None or _rank(best) <= top:
            if grant is not None and relation == Relation.team:
                return Decision(
                    True, "emergency_access", part2=part2 and not internal, emergency=True
                )
            return Decision(False, "consent_denies")
    if relation == Relation.related:
        # Family and carers see only what a consent naming them shares (the safety plan is
        # shared by the plan's own share, which safety.plans checks).
        if category == DataCategory.safety_plan and not part2:
            return base
        if best is None:
            return Decision(False, "no_consent")
        return Decision(True, "consent", part2=part2, consent_id=best.id)
    if not part2 or internal:
        # The team's treatment, payment and operations under HIPAA; within a Part 2 program,
        # its own staff (communications within the program: ADR 0021).
        return Decision(True, "part2_program" if internal else "permitted")
    if best is not None:
        return Decision(True, "consent", part2=True, consent_id=best.id)
    if grant is not None:
        return Decision(True, "emergency_access", part2=True, emergency=True)
    return Decision(False, "part2_no_consent")


def permitted(
    access: PatientAccess, purpose: Purpose | str | None = None
) -> frozenset[DataCategory]:
    """Every category `decide` permits here: for a query clause built before the query runs
    (a count, a page of search results)."""
    return frozenset(c for c in DataCategory if decide(access, c, purpose).permit)


def role_relation(by: User) -> Relation | None:
    """The relation `by` has to every patient `access.readable_patients(by)` gives: it follows
    from the role (a clinician reaches patients as their team, a patient themself, a family
    member a patient who chose them); None for anyone else (no clinical access)."""
    if not by.active:
        return None
    if by.is_clinician:
        return Relation.team
    if by.is_patient:
        return Relation.self
    if by.is_related_person:
        return Relation.related
    return None


def permitted_to(
    by: User, purpose: Purpose | str | None = None, *, session: Session | None = None
) -> frozenset[DataCategory]:
    """`permitted` for a search across every patient `by` may reach (FHIR search without a
    patient). The table answers per relation today; a rule that depends on one patient's
    consent (issue 18) must also be applied per patient here. `session`: the request's, for
    the purpose its door named."""
    relation = role_relation(by)
    if relation is None:
        return frozenset()
    named = requested_purpose(session)
    chosen = (named or DEFAULT_PURPOSE[relation]) if purpose is None else purpose
    return frozenset(c for c in DataCategory if decide_for(relation, c, chosen).permit)


def withheld_for_search(
    session: Session,
    by: User,
    patient_ids: Iterable[uuid.UUID],
    categories: Iterable[DataCategory],
    purpose: Purpose | str | None = None,
) -> tuple[dict[DataCategory, set[uuid.UUID]], set[uuid.UUID]]:
    """For a search across patients: per category, the patients whose records of it the
    decision withholds from `by` (consent, Part 2), and the ids of records corrected to
    Part 2 that are withheld. One load of labels and consents for all the patients (no
    query per patient)."""
    relation = role_relation(by)
    ids = list(dict.fromkeys(patient_ids))
    cats = list(categories)
    if relation is None:
        return {c: set(ids) for c in cats}, set()
    named = requested_purpose(session)
    chosen = (named or DEFAULT_PURPOSE[relation]) if purpose is None else purpose
    ctx = labels.context(session, by.organization_id, ids)
    out: dict[DataCategory, set[uuid.UUID]] = {c: set() for c in cats}
    emergency: set[uuid.UUID] = set()
    for pid in ids:
        for cat in cats:
            label = labels.category_label(ctx, pid, cat)
            answer = consent_decision(by, relation, pid, cat, chosen, label, ctx)
            if not answer.permit:
                out[cat].add(pid)
            elif answer.emergency:
                emergency.add(pid)
    for pid in sorted(emergency):
        # What the search may show under an emergency access is an emergency disclosure.
        record(
            session,
            by=by,
            action="emergency_disclosure",
            object_type="Patient",
            patient_id=pid,
            detail={"search": True},
        )
    forced = {
        rid
        for (table, rid), part2 in ctx.overrides.items()
        if part2 and table == "measure_response"
    }
    return out, forced


def withheld_corrected_for_search(
    session: Session,
    by: User,
    patient_ids: Iterable[uuid.UUID],
    categories: Iterable[DataCategory],
    purpose: Purpose | str | None = None,
) -> dict[DataCategory, set[uuid.UUID]]:
    """For a search across patients: per category, the patients whose records of it that a
    correction labelled Part 2 are withheld from `by`. The label is the one `labels_of` gives
    such a record (Part 2, the patient's programs), so the SQL clause answers as
    `filter_records` does (a permit must cover the record's own category and substance use).
    Read from the context `withheld_for_search` loaded (no query)."""
    relation = role_relation(by)
    ids = list(dict.fromkeys(patient_ids))
    cats = list(categories)
    if relation is None:
        return {c: set(ids) for c in cats}
    named = requested_purpose(session)
    chosen = (named or DEFAULT_PURPOSE[relation]) if purpose is None else purpose
    ctx = labels.context(session, by.organization_id, ids)
    out: dict[DataCategory, set[uuid.UUID]] = {c: set() for c in cats}
    for pid in ids:
        label = labels.Label(True, ctx.patient_programs.get(pid, frozenset()), corrected=True)
        for cat in cats:
            if not consent_decision(by, relation, pid, cat, chosen, label, ctx).permit:
                out[cat].add(pid)
    return out


def withheld_among(
    session: Session,
    by: User,
    rows: Iterable[tuple[Any, uuid.UUID]],
    purpose: Purpose | str | None = None,
) -> set[Any]:
    """For a search across patients whose records carry labels of their own (a plan item
    written by a Part 2 program's staff): the ids of the rows (`row`, its patient's id) the
    decision withholds from `by`, each decided by its category and label exactly as
    `filter_records` decides it, from one load of labels and consents for all the patients.
    The rows need only the columns the label rules read (id, category, who wrote it)."""
    found = list(rows)
    relation = role_relation(by)
    if relation is None:
        return {row.id for row, _ in found}
    named = requested_purpose(session)
    chosen = (named or DEFAULT_PURPOSE[relation]) if purpose is None else purpose
    ctx = labels.context(session, by.organization_id, {pid for _, pid in found})
    answers: dict[tuple[uuid.UUID, DataCategory | None, labels.Label], Decision] = {}
    withheld: set[Any] = set()
    for row, pid in found:
        cat = category_of(row)
        label = labels.labels_of(row, ctx, pid)
        answer = answers.get((pid, cat, label))
        if answer is None:
            answer = answers[(pid, cat, label)] = consent_decision(
                by, relation, pid, cat, chosen, label, ctx
            )
        if not answer.permit:
            withheld.add(row.id)
    return withheld


def audit_withheld_search(
    session: Session,
    by: User,
    withheld: int,
    *,
    object_type: str,
    purpose: Purpose | str | None = None,
) -> None:
    """One denied event for a search across patients that withheld `withheld` records."""
    relation = role_relation(by)
    chosen = purpose if purpose is not None else DEFAULT_PURPOSE.get(relation) if relation else None
    record(
        session,
        by=by,
        action="search",
        object_type=object_type,
        outcome=Outcome.denied,
        detail={"withheld": withheld, "purpose": str(chosen) if chosen else "none"},
    )


def category_of(row: Any) -> DataCategory | None:
    """The data category of a record a service returns: the model's `data_category` (a class
    attribute, or a property where a row refines it, as a measure response from its
    instrument). None (denied everywhere) for a record that names none."""
    value = getattr(row, "data_category", None)
    return value if isinstance(value, DataCategory) else None


def _disclosed(
    session: Session,
    access: PatientAccess,
    decisions: list[tuple[DataCategory | None, Decision]],
    object_type: str,
    purpose: Purpose | str | None,
) -> None:
    """What a read disclosed (each record's category and the decision that let it): reads
    under break-the-glass are audited as emergency disclosures, and the listeners (the
    disclosure log) get the counts by category and decision."""
    if not decisions:
        return
    emergency = sum(1 for _, d in decisions if d.emergency)
    if emergency:
        record(
            session,
            by=access.by,
            action="emergency_disclosure",
            object_type="Patient",
            patient_id=access.patient.id,
            detail={"count": emergency},
        )
    if not _LISTENERS:
        return
    counts: dict[tuple[DataCategory | None, Decision], int] = {}
    for key in decisions:
        counts[key] = counts.get(key, 0) + 1
    chosen = _purpose_of(access, purpose)
    on_disclosed(
        session,
        access,
        [Disclosed(object_type, cat, dec, n, chosen) for (cat, dec), n in counts.items()],
    )


_WITHHELD = "concord.disclosure.withheld"


def withheld_by_consent(session: Session, patient_id: uuid.UUID) -> int:
    """How many records this request withheld from the care team by the patient's consent
    (or Part 2 without one): the "N records withheld" line the team may see."""
    return int(session.info.get(_WITHHELD, {}).get(patient_id, 0))


def withheld_in_request(session: Session) -> int:
    """How many records this request withheld from the care team by consent, over every
    patient it read (a list of many patients, as the caseload, says it once)."""
    return sum(int(n) for n in session.info.get(_WITHHELD, {}).values())


def load_for(
    session: Session, organization_id: uuid.UUID, patient_ids: Iterable[uuid.UUID]
) -> None:
    """Load the labels and consents of many patients at once (a fixed number of queries,
    whatever their number), so that the per-patient decisions that follow (`filter_records`,
    `check_record`, `decide`) read them from memory: a read of many patients' records (the
    caseload, a clinician-wide list) decides per patient with no query per patient. Call it
    after the read's own queries and before its decisions (a flush in between clears it)."""
    labels.context(session, organization_id, patient_ids)


_CONSENT_REASONS = frozenset({"consent_denies", "part2_no_consent", "no_consent"})


def is_part2(row: Any, patient: Any) -> bool:
    """Whether a record of `patient` carries the 42 CFR Part 2 label (for the page's badge:
    the labels are loaded once per request, so no query per row)."""
    try:
        session = Session.object_session(patient)
    except Exception:  # not a mapped row: nothing to label
        return False
    if session is None:
        return False
    ctx = labels.context(session, patient.organization_id, [patient.id])
    return labels.labels_of(row, ctx, patient.id).part2


def prepare(session: Session, organization_id: uuid.UUID, patient_ids: Iterable[uuid.UUID]) -> None:
    """Load the Part 2 labels and consents of many patients at once (cached for the request),
    so a read that then decides patient by patient runs no query per patient."""
    ids = list(patient_ids)
    if ids:
        labels.context(session, organization_id, ids)


def label_of(session: Session, access: PatientAccess, row: Any) -> labels.Label:
    """The record's Part 2 label (rules and corrections; loaded once per request)."""
    ctx = labels.context(session, access.patient.organization_id, [access.patient.id])
    return labels.labels_of(row, ctx, access.patient.id)


def filter_records(
    session: Session,
    access: PatientAccess,
    rows: Iterable[T],
    *,
    object_type: str,
    action: str = "search",
    purpose: Purpose | str | None = None,
    category: Callable[[T], DataCategory | None] = category_of,
) -> list[T]:
    """The rows `access` may see, in their order. Decided once per category and label; when
    any is withheld, one denied event in the trail for the request, with the count per
    category; the disclosed rows go to `on_disclosed`."""
    ctx = labels.context(session, access.patient.organization_id, [access.patient.id])
    # What `decide` would ask of each row, worked out once for all of them: the purpose, and
    # whether any row can carry a label (without a Part 2 program or a correction, none does).
    chosen = default_purpose(access) if purpose is None else purpose
    labelled = bool(ctx.programs or ctx.overrides)
    answers: dict[tuple[DataCategory | None, labels.Label], Decision] = {}
    kept: list[T] = []
    disclosed: list[tuple[DataCategory | None, Decision]] = []
    withheld: dict[str, int] = {}
    by_consent = 0
    for row in rows:
        cat = category(row)
        label = labels.labels_of(row, ctx, access.patient.id) if labelled else labels.UNLABELLED
        answer = answers.get((cat, label))
        if answer is None:
            answer = answers[(cat, label)] = decide(
                access, cat, chosen, label=label, session=session
            )
        if answer.permit:
            kept.append(row)
            disclosed.append((cat, answer))
        else:
            key = str(cat) if cat is not None else "none"
            withheld[key] = withheld.get(key, 0) + 1
            by_consent += answer.reason in _CONSENT_REASONS
    if withheld:
        audit_withheld(
            session, access, withheld, object_type=object_type, action=action, purpose=purpose
        )
    if by_consent and access.on_team:
        counts = session.info.setdefault(_WITHHELD, {})
        counts[access.patient.id] = counts.get(access.patient.id, 0) + by_consent
    _disclosed(session, access, disclosed, object_type, chosen)
    return kept


def filter_many(
    session: Session,
    by: User,
    groups: Iterable[tuple[Any, list[T]]],
    *,
    object_type: str,
    action: str = "list",
    purpose: Purpose | str | None = None,
) -> dict[uuid.UUID, list[T]]:
    """`filter_records` for a read that found many patients' records in one query, each
    patient (a `Patient`) with their rows: the rows `by` may see, by patient id. The query
    must have found only patients `access.readable_patients(by)` gives (the care teams `by`
    is on, for a clinician), so `by`'s relation to each follows from the role
    (`role_relation`); anyone with none sees nothing. The labels and consents of all the
    patients are loaded once (`load_for`): a fixed number of queries, none per patient."""
    pairs = [(patient, rows) for patient, rows in groups if rows]
    relation = role_relation(by)
    if relation is None:
        return {}
    if pairs:
        load_for(session, by.organization_id, [patient.id for patient, _ in pairs])
    return {
        patient.id: filter_records(
            session,
            PatientAccess(by, patient, relation),
            rows,
            object_type=object_type,
            action=action,
            purpose=purpose,
        )
        for patient, rows in pairs
    }


def audit_withheld(
    session: Session,
    access: PatientAccess,
    withheld: Mapping[str, int],
    *,
    object_type: str,
    action: str = "search",
    purpose: Purpose | str | None = None,
) -> None:
    """One denied event for a request that withheld records: the count per category and the
    purpose (codes only)."""
    record(
        session,
        by=access.by,
        action=action,
        object_type=object_type,
        patient_id=access.patient.id,
        outcome=Outcome.denied,
        detail={
            "withheld": dict(sorted(withheld.items())),
            "purpose": str(default_purpose(access) if purpose is None else purpose),
        },
    )


def require(
    session: Session,
    access: PatientAccess,
    category: DataCategory | str | None,
    *,
    object_type: str,
    action: str = "read",
    object_id: uuid.UUID | str | None = None,
    purpose: Purpose | str | None = None,
    message: Msg | str | None = None,
    label: labels.Label | None = None,
) -> Decision:
    """Refuse (NotFound, audited: the answer a stranger gets, so existence never leaks) unless
    `access` may see `category` for `purpose`; the decision when it may."""
    decision = decide(access, category, purpose, label=label, session=session)
    if decision.permit:
        return decision
    record(
        session,
        by=access.by,
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:64] if object_id is not None else None,
        patient_id=access.patient.id,
        outcome=Outcome.denied,
        detail={
            "category": str(category) if category is not None else "none",
            "purpose": str(default_purpose(access) if purpose is None else purpose),
            "reason": decision.reason,
        },
    )
    raise NotFound(message or Msg("No such resource."))


def check_record(
    session: Session,
    access: PatientAccess,
    row: Any,
    *,
    object_type: str,
    action: str = "read",
    purpose: Purpose | str | None = None,
    message: Msg | str | None = None,
) -> None:
    """`require` for one record, by its category (`category_of`) and its Part 2 label."""
    cat = category_of(row)
    decision = require(
        session,
        access,
        cat,
        object_type=object_type,
        action=action,
        object_id=getattr(row, "id", None),
        purpose=purpose,
        message=message,
        label=label_of(session, access, row),
    )
    _disclosed(session, access, [(cat, decision)], object_type, purpose)


def _access_in(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> PatientAccess | None:
    found = kwargs.get("access")
    if isinstance(found, PatientAccess):
        return found
    return next((a for a in args if isinstance(a, PatientAccess)), None)


def discloses(
    object_type: str, *, action: str = "read"
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A domain read (`get_*`, `list_*`, `*_for`) taking the session and an access: what it
    returns passes the disclosure decision for the access's default purpose. A list keeps
    only the rows whose category is permitted (`filter_records`: withheld rows counted in one
    audit event); one record whose category is refused becomes NotFound (`check_record`);
    None passes. One decision per category, no query."""

    def wrap(read: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(read)
        def decided(*args: P.args, **kwargs: P.kwargs) -> R:
            result = read(*args, **kwargs)
            access = _access_in(args, kwargs)
            session = args[0] if args else kwargs.get("session")
            if access is None or not isinstance(session, Session):
                raise TypeError(f"{read.__name__} needs a session and an access to disclose")
            if result is None:
                return result
            if isinstance(result, list):
                kept = filter_records(
                    session, access, result, object_type=object_type, action="list"
                )
                return kept  # type: ignore[return-value]
            check_record(session, access, result, object_type=object_type, action=action)
            return result

        return decided

    return wrap
