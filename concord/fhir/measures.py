"""Questionnaires, responses and scores as FHIR R4, and responses accepted the way EHRs send
them: the questionnaire named by its LOINC panel (http://loinc.org/q/44249-1) or Concord's
canonical URL, items identified by LOINC code or Concord id, answers as LOINC answer codings
or as integers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError

from concord.categories import DataCategory
from concord.errors import InvalidInput
from concord.fhir.mapping import SYSTEM, _instant, _ref, person_ref
from concord.i18n import Msg
from concord.measures.library import Instrument, Item, Library, flag_items
from concord.measures.models import MeasureObservation, MeasureResponse
from concord.patients.models import Patient
from concord.validation import DATE_RANGE, in_range

LOINC = "http://loinc.org"
ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
ANSWER_SYSTEM = f"{SYSTEM}/CodeSystem/answer"
BAND_SYSTEM = f"{SYSTEM}/CodeSystem/severity-band"


def canonical(instrument: Instrument) -> str:
    return f"{SYSTEM}/Questionnaire/{instrument.code}"


def _text(value: Mapping[str, str], lang: str = "en") -> str:
    return value.get(lang) or value["en"]


def _translations(value: Mapping[str, str]) -> dict[str, Any] | None:
    others = [(lang, text) for lang, text in value.items() if lang != "en"]
    if not others:
        return None
    return {
        "extension": [
            {
                "url": TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": lang},
                    {"url": "content", "valueString": text},
                ],
            }
            for lang, text in others
        ]
    }


def _answer_coding(item: Item, value: int, lang: str = "en") -> dict[str, Any]:
    answer = item.answer_for(value)
    assert answer is not None
    coding: dict[str, Any] = {
        "system": LOINC if answer.code else ANSWER_SYSTEM,
        "code": answer.code or str(value),
        "display": _text(answer.text, lang),
        "extension": [{"url": ORDINAL, "valueDecimal": value}],
    }
    return coding


def _link_id(item: Item) -> str:
    return item.loinc or item.id


def questionnaire_resource(instrument: Instrument) -> dict[str, Any]:
    items = []
    for item in instrument.items:
        entry: dict[str, Any] = {
            "linkId": _link_id(item),
            "text": _text(item.text),
            "type": "choice",
            "required": item.required,
            "repeats": item.multiple,
            "answerOption": [{"valueCoding": _answer_coding(item, a.value)} for a in item.answers],
        }
        translated = _translations(item.text)
        if translated:
            entry["_text"] = translated
        if item.loinc:
            entry["code"] = [{"system": LOINC, "code": item.loinc}]
        items.append(entry)
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": instrument.code,
        "url": canonical(instrument),
        "version": instrument.version,
        "name": re.sub(r"[^A-Za-z0-9]", "", instrument.code),
        "title": _text(instrument.name),
        "status": "active",
        "subjectType": ["Patient"],
        "description": _text(instrument.instructions),
        "copyright": f"{instrument.licence.get('holder', '')}. "
        f"{instrument.licence.get('terms', '')}".strip(),
        "item": items,
    }
    if instrument.loinc_panel:
        resource["code"] = [{"system": LOINC, "code": instrument.loinc_panel}]
        resource["derivedFrom"] = [f"http://loinc.org/q/{instrument.loinc_panel}"]
    return resource


def response_resource(
    response: MeasureResponse, instrument: Instrument | None, patient: Patient
) -> dict[str, Any]:
    items = []
    for item_id, value in sorted(
        response.answers.items(), key=lambda kv: _order(instrument, kv[0])
    ):
        item = instrument.item(item_id) if instrument else None
        if item is None or not item.chosen(value):
            continue
        items.append(
            {
                "linkId": _link_id(item),
                "text": _text(item.text, response.language),
                "answer": [
                    {"valueCoding": _answer_coding(item, a.value, response.language)}
                    for a in item.chosen(value)
                ],
            }
        )
    author = (
        _ref("Patient", patient.id)
        if response.mode == "portal"
        else person_ref(response.entered_by, patient)
    )
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": str(response.id),
        "questionnaire": f"{canonical(instrument)}|{response.instrument_version}"
        if instrument
        else f"{SYSTEM}/Questionnaire/{response.instrument}",
        "status": _status(response),
        "subject": _ref("Patient", patient.id),
        "authored": _instant(response.completed_at or response.updated_at),
        "author": author,
        "source": {"display": response.proxy_name}
        if response.proxy_name
        else _ref("Patient", patient.id),
        "item": items,
    }
    if response.client_identifier:
        resource["identifier"] = (
            {"system": response.client_system, "value": response.client_identifier}
            if response.client_system
            else {"value": response.client_identifier}
        )
    return resource


def _status(response: MeasureResponse) -> str:
    if response.status == "completed":
        return "amended" if response.amends_id else "completed"
    if response.status == "superseded":
        # An earlier version, kept as history of its amendment. R4 has no "superseded"; it
        # was completed as it stands, and searches return only the current version.
        return "completed"
    if response.status == "entered_in_error":
        return "entered-in-error"
    return "in-progress"


def _order(instrument: Instrument | None, item_id: str) -> int:
    if instrument is None:
        return 0
    for n, item in enumerate(instrument.items):
        if item.id == item_id:
            return n
    return 999


def score_observation(
    observation: MeasureObservation, instrument: Instrument | None, patient: Patient
) -> dict[str, Any]:
    score = instrument.score(observation.score_id) if instrument else None
    band = score.band_for(observation.value) if score else None
    if band is not None and observation.band != band.code:
        band = None
    value = observation.value
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(observation.id),
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                        "display": "Survey",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": observation.code_system, "code": observation.code}],
            "text": _text(score.name) if score else observation.code,
        },
        "subject": _ref("Patient", patient.id),
        "effectiveDateTime": _instant(observation.effective_at),
        "valueQuantity": {
            "value": int(value) if float(value).is_integer() else value,
            "unit": "{score}",
            "system": "http://unitsofmeasure.org",
            "code": "{score}",
        },
        "derivedFrom": [_ref("QuestionnaireResponse", observation.response_id)],
    }
    if band is not None:
        resource["interpretation"] = [
            {
                "coding": [{"system": BAND_SYSTEM, "code": band.code, "display": _text(band.name)}],
                "text": _text(band.name),
            }
        ]
    return resource


def item_observations(
    response: MeasureResponse, instrument: Instrument, patient: Patient
) -> list[dict[str, Any]]:
    """An Observation for each answered item that LOINC codes."""
    result = []
    category = [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "survey",
                }
            ]
        }
    ]
    if instrument.category == DataCategory.social_needs:
        # US Core screening-assessment Observations of a social-needs screen carry the sdoh
        # category (US Core's AHC HRSN examples), and the SDOHCC domain of each item.
        category.append({"coding": [{"system": US_CORE_CATEGORY, "code": "sdoh"}]})
    domains = _item_domains(instrument)
    for item in instrument.items:
        value = response.answers.get(item.id)
        if item.loinc is None or value is None or not item.chosen(value):
            continue
        # A "check all that apply" question is one Observation per box checked (US Core's
        # AHC HRSN example 96778-6 answer-5, answer-6).
        chosen = item.chosen(value)
        for n, answer in enumerate(chosen):
            item_category = list(category)
            if item.id in domains:
                item_category.append(
                    {"coding": [{"system": SDOHCC_CATEGORY, "code": domains[item.id]}]}
                )
            suffix = f".{n}" if len(chosen) > 1 else ""
            result.append(
                {
                    "resourceType": "Observation",
                    "id": f"{response.id}.{item.id}{suffix}"[:64],
                    "status": "final",
                    "category": item_category,
                    "code": {
                        "coding": [{"system": LOINC, "code": item.loinc}],
                        "text": _text(item.text),
                    },
                    "subject": _ref("Patient", patient.id),
                    "effectiveDateTime": _instant(response.completed_at or response.updated_at),
                    "valueCodeableConcept": {"coding": [_answer_coding(item, answer.value)]},
                    "derivedFrom": [_ref("QuestionnaireResponse", response.id)],
                }
            )
    return result


US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
SDOHCC_CATEGORY = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)


def _item_domains(instrument: Instrument) -> dict[str, str]:
    """Item id -> the SDOHCC domain of the positive-screen flag that reads it."""
    found: dict[str, str] = {}
    for flag in instrument.flags:
        if flag.domain:
            for item_id in sorted(flag_items(instrument, flag)):
                found.setdefault(item_id, flag.domain)
    return found


# --- accepting a response from another system ----------------------------------------------


class Intake:
    """A QuestionnaireResponse sent to Concord, checked and turned into plain answers."""

    def __init__(
        self,
        patient_id: str,
        instrument: Instrument,
        answers: dict[str, int],
        authored: datetime | None,
        identifier: tuple[str | None, str] | None,
        language: str,
    ) -> None:
        self.patient_id = patient_id
        self.instrument = instrument
        self.answers = answers
        self.authored = authored
        self.identifier = identifier
        self.language = language
        self.amends = False


def _flatten(items: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    for item in items or []:
        yield item
        yield from _flatten(item.get("item") or [])
        for answer in item.get("answer") or []:
            yield from _flatten(answer.get("item") or [])


def _instrument_for(reference: str, library: Library) -> Instrument | None:
    reference = reference.split("|", 1)[0].strip()
    match = re.match(r"^https?://loinc\.org/q/([0-9]+-[0-9])$", reference)
    if match:
        return library.by_loinc_panel(match.group(1))
    for prefix in (f"{SYSTEM}/Questionnaire/", "Questionnaire/"):
        if reference.startswith(prefix):
            return library.get(reference[len(prefix) :])
    return None


def _answer_value(item: Item, answer: Mapping[str, Any]) -> int | str:
    """The item's value for one FHIR answer, or a problem described in words."""
    if "valueCoding" in answer:
        coding = answer["valueCoding"] or {}
        code = str(coding.get("code", ""))
        for option in item.answers:
            if option.code and option.code == code:
                return option.value
            if not option.code and code == str(option.value):
                return option.value
        return (
            f"answer code {code or '(none)'} is not an answer to this question; allowed: "
            f"{_codes(item) or _allowed(item)}"
        )
    if "valueInteger" in answer:
        value = answer["valueInteger"]
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number, one of {_allowed(item)}"
        if value not in item.values:
            return f"{value} is not an answer to this question; allowed: {_allowed(item)}"
        return value
    if "valueDecimal" in answer and float(answer["valueDecimal"]).is_integer():
        return _answer_value(item, {"valueInteger": int(answer["valueDecimal"])})
    kinds = [k for k in answer if k.startswith("value")]
    codes = _codes(item)
    return (
        f"{kinds[0] if kinds else 'this answer'} is not accepted: send a LOINC answer code "
        f"({codes}) or a whole number ({_allowed(item)})"
        if codes
        else f"must be a whole number, one of {_allowed(item)}"
    )


# Only for the message when an answer is refused (the check-in's answers are checked one by one).
def _allowed(item: Item) -> str:
    return ", ".join(str(v) for v in sorted(item.values))


def _codes(item: Item) -> str:
    return ", ".join(a.code for a in item.answers if a.code)


# --- the R4 check of a posted response, the usual shape first ----------------------------------
#
# Checking a body against the full R4 model (fhir.resources) cost about a third of a
# millisecond a check-in, a tenth of its CPU (issue 17). Most bodies have one plain shape: a
# questionnaire, a status, a patient, a time, an identifier and items answered by integers or
# codings. `plainly_valid` recognises that shape by rules stricter than R4's (below); a body it
# recognises is one the R4 model accepts (tests/fhir/test_plain_response.py checks this on
# every variant of the usual bodies it builds), and every other body, valid or not, is checked
# by the full model as before, so a refused body gets the same OperationOutcome as before.
# The rules are a subset of R4's: any field, type or character outside it only means "ask
# the full model".

# R4 primitives (fhir_core), anchored, and narrower where R4 allows more than the usual body
# needs: `string` has at least one character and no whitespace but space, tab, CR and LF;
# `code` is words separated by one space; `uri` and `canonical` are non-empty here.
_STRING = re.compile(r"[ \r\n\t\S]+")
_CODE = re.compile(r"[^\s]+( [^\s]+)*")
_URI = re.compile(r"\S+")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# A dateTime with a time and a zone (R4 also allows a year, a month or a day alone); R4's
# zones run from -14:00 to +14:00. The digits' ranges are checked by parsing it.
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)
_PATIENT_REFERENCE = re.compile(r"Patient/[A-Za-z0-9\-.]{1,64}")
_PLAIN_TOP = frozenset(
    {
        "resourceType",
        "id",
        "language",
        "identifier",
        "questionnaire",
        "status",
        "subject",
        "authored",
        "item",
    }
)
_PLAIN_ITEM = frozenset({"linkId", "text", "answer", "item"})
_PLAIN_CODING = frozenset({"system", "code", "display"})
# Whole numbers in a range far inside R4's 32-bit integer.
_PLAIN_INTEGER = range(-1_000_000, 1_000_001)
_PLAIN_DEPTH = 5


def _text_is(pattern: re.Pattern[str], value: Any) -> bool:
    return type(value) is str and pattern.fullmatch(value) is not None


def _plain_mapping(value: Any, allowed: frozenset[str]) -> bool:
    return type(value) is dict and bool(value) and value.keys() <= allowed


def _plain_coding(coding: Any) -> bool:
    if not _plain_mapping(coding, _PLAIN_CODING) or "code" not in coding:
        return False
    return (
        _text_is(_CODE, coding["code"])
        and ("system" not in coding or _text_is(_URI, coding["system"]))
        and ("display" not in coding or _text_is(_STRING, coding["display"]))
    )


def _plain_answer(answer: Any, depth: int) -> bool:
    if type(answer) is not dict or not answer:
        return False
    values = 0
    for key, value in answer.items():
        if key == "valueInteger":
            if type(value) is not int or value not in _PLAIN_INTEGER:
                return False
        elif key == "valueCoding":
            if not _plain_coding(value):
                return False
        elif key == "item":
            if not _plain_items(value, depth + 1):
                return False
            continue
        else:
            return False
        values += 1
    return values == 1


def _plain_items(items: Any, depth: int) -> bool:
    if type(items) is not list or not items or depth > _PLAIN_DEPTH:
        return False
    for item in items:
        if not _plain_mapping(item, _PLAIN_ITEM) or not _text_is(_STRING, item.get("linkId")):
            return False
        if "text" in item and not _text_is(_STRING, item["text"]):
            return False
        if "answer" in item:
            # R4's qrs-1: an item's children are under the item or under its answers, not both.
            if "item" in item:
                return False
            answers = item["answer"]
            if type(answers) is not list or not answers:
                return False
            if not all(_plain_answer(a, depth) for a in answers):
                return False
        elif "item" in item and not _plain_items(item["item"], depth + 1):
            return False
    return True


def plainly_valid(body: dict[str, Any]) -> bool:
    """Whether `body` has the usual shape of a posted response, every part of it within
    rules stricter than R4's (above): then the R4 model accepts it and need not be asked. False
    says only "ask the full model"."""
    if not body.keys() <= _PLAIN_TOP or body.get("resourceType") != "QuestionnaireResponse":
        return False
    if body.get("status") not in ("completed", "amended"):
        return False
    if not _text_is(_URI, body.get("questionnaire")):
        return False
    subject = body.get("subject")
    if not _plain_mapping(subject, frozenset({"reference"})) or not _text_is(
        _PATIENT_REFERENCE, subject["reference"]
    ):
        return False
    if "id" in body and not _text_is(_ID, body["id"]):
        return False
    if "language" in body and not _text_is(_CODE, body["language"]):
        return False
    if "authored" in body:
        authored = body["authored"]
        if not _text_is(_DATETIME, authored):
            return False
        try:
            datetime.fromisoformat(authored.replace("Z", "+00:00"))
        except ValueError:
            return False
    if "identifier" in body:
        identifier = body["identifier"]
        if not _plain_mapping(identifier, frozenset({"system", "value"})):
            return False
        if "value" not in identifier or not _text_is(_STRING, identifier["value"]):
            return False
        if "system" in identifier and not _text_is(_URI, identifier["system"]):
            return False
    return "item" not in body or _plain_items(body["item"], 0)


def parse_response(body: Any, library: Library) -> Intake:
    """Check a posted QuestionnaireResponse; every problem names where it is."""
    if not isinstance(body, dict) or body.get("resourceType") != "QuestionnaireResponse":
        raise InvalidInput.field("resourceType", Msg("must be QuestionnaireResponse"))
    try:
        if not plainly_valid(body):
            QuestionnaireResponse.model_validate(body)
    except ValidationError as exc:
        errors = {".".join(str(p) for p in e["loc"]) or "body": e["msg"] for e in exc.errors()}
        raise InvalidInput(
            Msg("This is not a valid FHIR QuestionnaireResponse."), errors=errors
        ) from None
    errors: dict[str, str] = {}
    subject = str((body.get("subject") or {}).get("reference", ""))
    patient_id = subject.rsplit("Patient/", 1)[1] if "Patient/" in subject else ""
    if not patient_id:
        errors["subject"] = Msg("must reference the patient: Patient/<id>")
    if body.get("status") not in ("completed", "amended"):
        errors["status"] = Msg("only completed responses are accepted (completed or amended)")
    instrument = _instrument_for(str(body.get("questionnaire", "")), library)
    if instrument is None:
        known = ", ".join(
            f"http://loinc.org/q/{i.loinc_panel}" for i in library.all() if i.loinc_panel
        )
        errors["questionnaire"] = Msg(
            "is not an instrument here; use Concord's canonical URL "
            "(%(base)s/Questionnaire/<code>) or a LOINC panel: "
            "%(known)s",
            base=SYSTEM,
            known=known,
        )
    authored = None
    if body.get("authored"):
        raw = str(body["authored"])
        try:
            authored = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if authored.tzinfo is None:
                authored = authored.replace(tzinfo=UTC)
        except ValueError:
            errors["authored"] = Msg("must be a date and time (ISO 8601)")
        else:
            # FHIR allows any year from 0001; a response from before 1900 is a mistake, and
            # one from year 0001 stored broke every page and job that read it (issue 16).
            try:
                in_range(authored)
            except ValueError:
                authored = None
                errors["authored"] = Msg(DATE_RANGE)
    identifier = None
    raw_identifier = body.get("identifier")
    if isinstance(raw_identifier, dict) and raw_identifier.get("value"):
        identifier = (raw_identifier.get("system"), str(raw_identifier["value"]))
    answers: dict[str, int] = {}
    if instrument is not None:
        score_codes = {s.loinc for s in instrument.scores if s.loinc}
        for item in _flatten(body.get("item") or []):
            link = str(item.get("linkId", "")).lstrip("/")
            given = item.get("answer") or []
            if link in score_codes or (not given and item.get("item")):
                continue  # a total the sender calculated, or a group: Concord scores itself
            question = instrument.item_by_code(link)
            if question is None:
                errors[f"item[{link}]"] = Msg("is not a question of %(code)s", code=instrument.code)
                continue
            if not given:
                continue
            if len(given) > 1 and not question.multiple:
                errors[f"item[{link}]"] = Msg("must have one answer")
                continue
            values = [_answer_value(question, one) for one in given]
            value = next((v for v in values if isinstance(v, str)), None) or sum(
                int(v) for v in values
            )
            if question.multiple and not isinstance(value, str):
                if 0 in values and len(values) > 1:
                    value = "'none of the above' cannot be given with another answer"
                elif len(set(values)) != len(values):
                    value = "repeats an answer"
            if isinstance(value, str):
                errors[f"item[{link}]"] = Msg(value)
            elif question.id in answers:
                errors[f"item[{link}]"] = Msg("is answered twice")
            else:
                answers[question.id] = value
    if errors:
        raise InvalidInput(Msg("The QuestionnaireResponse cannot be accepted."), errors=errors)
    assert instrument is not None
    language = str(body.get("language") or "en")[:2]
    intake = Intake(patient_id, instrument, answers, authored, identifier, language)
    intake.amends = body.get("status") == "amended"
    return intake
