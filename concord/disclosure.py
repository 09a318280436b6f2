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
from concord.errors import NotFound
from concord.i18n import Msg

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


@dataclass(frozen=True)
class Decision:
    """The answer, and why, as a code (never patient data: it may be written to the trail)."""

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
    """Treatment for the care team, the patient's own access, a family member's sharing."""
    return DEFAULT_PURPOSE[access.relation]


def decide(
    access: PatientAccess, category: DataCategory | str | None, purpose: Purpose | str | None = None
) -> Decision:
    """May `access.by` see data of `category` about `access.patient`, for `purpose` (by default
    the one their relation reads for)? The one decision every read of patient data asks."""
    return decide_for(
        access.relation, category, default_purpose(access) if purpose is None else purpose
    )


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


def permitted_to(by: User, purpose: Purpose | str | None = None) -> frozenset[DataCategory]:
    """`permitted` for a search across every patient `by` may reach (FHIR search without a
    patient). The table answers per relation today; a rule that depends on one patient's
    consent (issue 18) must also be applied per patient here."""
    relation = role_relation(by)
    if relation is None:
        return frozenset()
    chosen = DEFAULT_PURPOSE[relation] if purpose is None else purpose
    return frozenset(c for c in DataCategory if decide_for(relation, c, chosen).permit)


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
    """The rows `access` may see, in their order. Decided once per category; when any is
    withheld, one denied event in the trail for the request, with the count per category."""
    answers: dict[DataCategory | None, Decision] = {}
    kept: list[T] = []
    withheld: dict[str, int] = {}
    shown: dict[DataCategory | None, int] = {}
    for row in rows:
        cat = category(row)
        answer = answers.get(cat)
        if answer is None:
            answer = answers[cat] = decide(access, cat, purpose)
        if answer.permit:
            kept.append(row)
            shown[cat] = shown.get(cat, 0) + 1
        else:
            key = str(cat) if cat is not None else "none"
            withheld[key] = withheld.get(key, 0) + 1
    if withheld:
        audit_withheld(
            session, access, withheld, object_type=object_type, action=action, purpose=purpose
        )
    if shown and _LISTENERS:
        chosen = _purpose_of(access, purpose)
        on_disclosed(
            session,
            access,
            [Disclosed(object_type, c, answers[c], n, chosen) for c, n in shown.items()],
        )
    return kept


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
) -> Decision:
    """Refuse (NotFound, audited: the answer a stranger gets, so existence never leaks) unless
    `access` may see `category` for `purpose`; the permitting decision otherwise."""
    decision = decide(access, category, purpose)
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
    """`require` for one record, by its category (`category_of`)."""
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
    )
    if _LISTENERS:
        chosen = _purpose_of(access, purpose)
        on_disclosed(session, access, [Disclosed(object_type, cat, decision, 1, chosen)])


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
