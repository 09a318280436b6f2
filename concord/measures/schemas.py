"""What the measures forms and the JSON API may send: one model per input, shared by the page
and its /api/v1 twin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from concord.errors import InvalidInput
from concord.i18n import N_, Msg
from concord.measures.models import Mode
from concord.measures.service import Submission
from concord.validation import Checkbox, OptDate, OptText200, Text200, blank_to_none

# How a clinician may have collected the answers they record (the patient's own are "portal";
# another system's come through /fhir).
RECORD_MODES = (Mode.in_person, Mode.phone, Mode.video, Mode.proxy)

OptInt = Annotated[int | None, BeforeValidator(blank_to_none)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class ScheduleIn(_In):
    """Ask the patient to complete an instrument every `every_days` days."""

    instrument: Text200
    every_days: int
    start_on: OptDate = None
    end_on: OptDate = None


class ScheduleChangeIn(_In):
    """Change a schedule's cadence or end (with the version you saw), or stop it."""

    stop: Checkbox = False
    every_days: OptInt = None
    end_on: OptDate = None
    version: OptInt = None

    def change(self) -> tuple[int, int]:
        """The cadence and version a change needs (a stop needs neither)."""
        if self.every_days is None:
            raise InvalidInput.field("every_days", Msg("is required"))
        if self.version is None:
            raise InvalidInput.field("version", Msg("is required"))
        return self.every_days, self.version


class AskNowIn(_In):
    """Ask the patient to complete an instrument today, scheduled or not."""

    instrument: Text200


def _recorded_mode(value: Mode) -> Mode:
    if value not in RECORD_MODES:
        raise ValueError(N_("say how the answers were collected: in_person, phone, video or proxy"))
    return value


class RecordedCheckInIn(_In):
    """Answers a clinician collected and records on the patient's behalf."""

    mode: Annotated[Mode, AfterValidator(_recorded_mode)]
    answers: dict[str, int] = {}
    declined: list[str] = []
    proxy_name: OptText200 = None
    proxy_relationship: OptText200 = None
    language: str = "en"

    def to_submission(self) -> Submission:
        proxy = self.mode == Mode.proxy
        return Submission(
            answers=self.answers,
            mode=self.mode,
            answered_by="proxy" if proxy else "patient",
            proxy_name=self.proxy_name if proxy else None,
            proxy_relationship=self.proxy_relationship if proxy else None,
            language=self.language,
            declined=tuple(self.declined),
        )


class CheckInStartIn(_In):
    """The patient starts (or resumes) a check-in."""

    instrument: Text200


class CheckInAnswersIn(_In):
    """The patient's answers so far (`submit`: false keeps them to finish later) or all of them
    (`submit`: true scores and sends), with the version of the check-in they started from."""

    answers: dict[str, int] = {}
    declined: list[str] = []
    version: int
    submit: Checkbox = True


# --- the check-in pages' forms: each question is a field `a.<item id>` -------------------------

DECLINED = "declined"  # the value of a question's "I'd rather not answer" choice


def declined_in(form: Mapping[str, Any]) -> list[str]:
    """The questions whose "I'd rather not answer" choice is picked."""
    return [k[2:] for k, v in form.items() if k.startswith("a.") and v == DECLINED]


def answers_in(form: Mapping[str, Any]) -> dict[str, int]:
    """Form fields `a.<item id>` hold the chosen values; empty means not answered."""
    answers: dict[str, int] = {}
    errors: dict[str, str] = {}
    for key, value in form.items():
        if not key.startswith("a.") or blank_to_none(value) in (None, DECLINED):
            continue
        item = key[2:]
        try:
            if isinstance(value, list):
                # A "check all that apply" question: each box checked is a power of two and
                # the answer is their sum; the instrument's values say which sums are allowed.
                checked = [int(str(v)) for v in value if blank_to_none(v) is not None]
                if len(set(checked)) != len(checked) or (0 in checked and len(checked) > 1):
                    raise ValueError
                answers[item] = sum(checked)
            else:
                answers[item] = int(str(value))
        except ValueError:
            errors[f"answers.{item}"] = Msg("must be one of the answers shown")
    if errors:
        raise InvalidInput(Msg("Some answers are not allowed."), errors=errors)
    return answers


def recorded_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The recording page's fields as RecordedCheckInIn takes them (a blank choice is none)."""
    data = {
        k: v for k, v in form.items() if not k.startswith("a.") and blank_to_none(v) is not None
    }
    return {**data, "answers": answers_in(form), "declined": declined_in(form)}


def answers_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The patient's check-in page as CheckInAnswersIn takes it: its "save for later" button
    (`action=save`) keeps the answers without sending them."""
    return {
        **form,
        "answers": answers_in(form),
        "declined": declined_in(form),
        "submit": form.get("action") != "save",
    }
