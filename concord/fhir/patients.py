"""Patient create and update through FHIR (POST /fhir/Patient, PUT /fhir/Patient/[id]): an
EHR enrols and updates the patients it sends to Concord. The same action (concord.actions.
patients) and rules as the JSON API and the page: who may register, the MRN unique in the
organization, a birth date not in the future, every change audited.

What a Patient resource may carry is what Concord stores: the MRN (an identifier in the
organization's MRN system), an official name (family, one given name), a usual name (the
preferred given name), gender, birthDate, phone and email, a language (en or es), active.
Anything else (an address, contacts, a second identifier system...) is refused (400
not-supported) naming the element: a server that dropped it would answer 201 for data it
did not keep."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from sqlalchemy.orm import Session

from concord import access
from concord.accounts.models import Organization, User
from concord.accounts.organizations import organization_of
from concord.actions import patients as patient_actions
from concord.errors import InvalidInput, NotFound, NotSupported, PreconditionFailed, StaleVersion
from concord.fhir import mapping
from concord.fhir.service import mrn_system
from concord.fhir.validators import VALIDATORS
from concord.i18n import Msg
from concord.patients import service as patients
from concord.patients.models import AdministrativeGender, Patient
from concord.patients.service import NewPatient

# Elements of a Patient Concord keeps (and those a server manages, accepted and set by it).
KEPT = {
    "resourceType",
    "id",
    "meta",
    "text",
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "communication",
    "managingOrganization",
}
LANGUAGES = ("en", "es")


def _check_shape(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("resourceType") != "Patient":
        raise InvalidInput.field("resourceType", Msg("must be Patient"))
    try:
        VALIDATORS["Patient"].model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput.field(where[:120], Msg("is not valid FHIR R4")) from None
    extra = sorted(k for k in body if k not in KEPT)
    if extra:
        raise NotSupported.field(
            extra[0],
            Msg(
                "%(names)s: not kept by Concord; send the Patient without them "
                "(kept: identifier, name, gender, birthDate, telecom, communication, active)",
                names=", ".join(extra)[:200],
            ),
        )
    return body


def _mrn(body: dict[str, Any], system: str) -> str:
    identifiers = body.get("identifier") or []
    mrns = [i for i in identifiers if i.get("system") == system and i.get("value")]
    others = [i for i in identifiers if i.get("system") != system]
    if others:
        raise NotSupported.field(
            "identifier",
            Msg(
                "only the MRN (system %(system)s) is kept; another system was sent",
                system=system,
            ),
        )
    if len(mrns) != 1:
        raise InvalidInput.field(
            "identifier", Msg("needs exactly one MRN, system %(system)s", system=system)
        )
    value = str(mrns[0]["value"]).strip()
    if not value or len(value) > 40:
        raise InvalidInput.field("identifier", Msg("the MRN must be 1 to 40 characters"))
    return value


def _names(body: dict[str, Any]) -> tuple[str, str, str | None]:
    names = body.get("name") or []
    official = [n for n in names if n.get("use") in (None, "official")]
    usual = [n for n in names if n.get("use") == "usual"]
    if len(official) != 1 or len(official) + len(usual) != len(names) or len(usual) > 1:
        raise InvalidInput.field(
            "name",
            Msg("must be one official name (family and a given name), and at most one usual"),
        )
    family = (official[0].get("family") or "").strip()
    given = [g.strip() for g in official[0].get("given") or [] if g.strip()]
    if not family or len(given) != 1:
        raise InvalidInput.field(
            "name", Msg("the official name needs a family name and exactly one given name")
        )
    preferred = None
    if usual:
        usual_given = [g.strip() for g in usual[0].get("given") or [] if g.strip()]
        if len(usual_given) != 1 or usual[0].get("family"):
            raise InvalidInput.field(
                "name", Msg("the usual name is the preferred given name alone")
            )
        preferred = usual_given[0]
    for value in (family, given[0], preferred):
        if value is not None and len(value) > 100:
            raise InvalidInput.field("name", Msg("a name may be at most 100 characters"))
    return given[0], family, preferred


def _telecom(body: dict[str, Any]) -> tuple[str | None, str | None]:
    phone = email = None
    for contact in body.get("telecom") or []:
        system = contact.get("system")
        if system == "phone" and phone is None:
            phone = contact.get("value")
        elif system == "email" and email is None:
            email = contact.get("value")
        else:
            raise NotSupported.field(
                "telecom", Msg("one phone and one email are kept; nothing else")
            )
    return phone, email


def _language(body: dict[str, Any]) -> str:
    codes = [
        c.get("code")
        for item in body.get("communication") or []
        for c in (item.get("language") or {}).get("coding") or []
    ]
    if not codes:
        return "en"
    if len(codes) != 1 or codes[0] not in LANGUAGES:
        raise InvalidInput.field("communication", Msg("one language, en or es (urn:ietf:bcp:47)"))
    return str(codes[0])


def intake(body: Any, *, system: str, clinic_id: Any) -> NewPatient:
    """A Patient resource as Concord's registration data, or the first thing wrong with it."""
    body = _check_shape(body)
    given, family, preferred = _names(body)
    born = body.get("birthDate")
    if not born:
        raise InvalidInput.field("birthDate", Msg("is needed (YYYY-MM-DD)"))
    try:
        birth_date = date.fromisoformat(born)
    except ValueError:
        raise InvalidInput.field("birthDate", Msg("must be a full date, YYYY-MM-DD")) from None
    if birth_date.year < 1900:
        raise InvalidInput.field("birthDate", Msg("must be after 1900"))
    gender = body.get("gender") or AdministrativeGender.unknown
    if gender not in {str(g) for g in AdministrativeGender}:
        raise InvalidInput.field(
            "gender", Msg("must be one of: %(allowed)s", allowed=", ".join(AdministrativeGender))
        )
    managing = body.get("managingOrganization") or {}
    if set(managing) - {"display"}:
        raise NotSupported.field(
            "managingOrganization",
            Msg("the clinic is the enrolling clinician's (only a display is accepted)"),
        )
    phone, email = _telecom(body)
    if body.get("active") is False:
        raise NotSupported.field(
            "active", Msg("a patient is made inactive in Concord, not through FHIR")
        )
    return NewPatient(
        given_name=given,
        family_name=family,
        birth_date=birth_date,
        mrn=_mrn(body, system),
        clinic_id=clinic_id,
        preferred_name=preferred,
        gender=str(gender),
        language=_language(body),
        phone=phone,
        email=email.strip().lower() if email else None,
    )


def _clinic_of(by: User) -> Any:
    if by.clinic_id is None:
        raise InvalidInput.field(
            "managingOrganization",
            Msg("the sender belongs to no clinic; enrol from a clinic's account"),
        )
    return by.clinic_id


def _conditional(session: Session, by: User, criteria: str, system: str) -> Patient | None:
    """The patient If-None-Exist names: identifier=[system|]MRN, nothing else (a create that
    ignored other criteria would store a duplicate)."""
    try:
        pairs = parse_qsl(criteria.lstrip("?"), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        pairs = []
    if len(pairs) != 1 or pairs[0][0] != "identifier" or not pairs[0][1].strip("|"):
        raise InvalidInput.field(
            "If-None-Exist", Msg("only identifier=[system]|value is supported on create")
        )
    raw = pairs[0][1]
    given_system, _, value = raw.rpartition("|")
    if given_system and given_system != system:
        return None  # no patient here has an identifier in another system
    try:
        return patients.find_by_mrn(session, by=by, mrn=value)
    except NotFound:
        # Another team's patient: not the caller's to read; the create then meets the
        # organization's unique MRN, as registering on the page does.
        return None


def create(
    session: Session, *, by: User, body: Any, mrn_template: str, if_none_exist: str | None
) -> tuple[dict[str, Any], Patient, bool]:
    """(the stored Patient resource, the patient, whether it was created now)."""
    organization: Organization = organization_of(session, by)
    patients.check_may_register(session, by=by, organization=organization)
    system = mrn_system(mrn_template, organization)
    data = intake(body, system=system, clinic_id=_clinic_of(by))
    if body.get("id"):
        raise InvalidInput.field("id", Msg("is given by Concord on create; use PUT to update"))
    if if_none_exist is not None:
        existing = _conditional(session, by, if_none_exist, system)
        if existing is not None:
            return mapping.patient_resource(existing, system), existing, False
    patient = patient_actions.enrol(session, by=by, organization=organization, data=data)
    return mapping.patient_resource(patient, system), patient, True


def parse_if_match(header: str | None) -> int | None:
    """If-Match: W/"3" (or "3") names version 3."""
    if header is None:
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InvalidInput.field("If-Match", Msg('must be a version ETag such as W/"3"'))
    return int(value)


def update(
    session: Session,
    *,
    by: User,
    ident: str,
    body: Any,
    mrn_template: str,
    if_match: str | None,
) -> tuple[dict[str, Any], Patient]:
    version = parse_if_match(if_match)
    acc = access.team_access(session, by, ident, action="update", object_type="Patient")
    system = mrn_system(mrn_template, organization_of(session, by))
    data = intake(body, system=system, clinic_id=acc.patient.clinic_id)
    if body.get("id") != str(acc.patient.id):
        raise InvalidInput.field("id", Msg("must be the id in the URL"))
    try:
        patient = patient_actions.update(session, access=acc, data=data, version=version)
    except StaleVersion as exc:
        raise PreconditionFailed(
            Msg(
                "If-Match names version %(sent)s; the patient is at version %(stored)s.",
                sent=version,
                stored=exc.data.get("version"),
            )
        ) from None
    return mapping.patient_resource(patient, system), patient
