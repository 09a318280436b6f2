"""The demo's content, read from the YAML files in concord/demo_data/ and checked on load: the
clinics and their staff (clinic.yaml), the patients (patients.yaml), one plan story per file
(plans/<name>.yaml), the safety stories (safety.yaml) and what the team writes in Spanish, with
each program's decision aid and question (team_words.yaml), and the co-occurring story of a
patient of the addiction service, a 42 CFR Part 2 program (part2.yaml). Everything in them is
synthetic.

A file that does not fit raises DemoDataError naming the file and the field. `content()` reads
them once; concord/demo.py builds the organization from what it returns.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from concord.accounts.models import Role
from concord.medications.schemas import MedicationIn, MoudIn, ReportedIn

DATA_DIR = Path(__file__).resolve().parent / "demo_data"

STAGES = ("new", "draft", "active", "review_overdue", "awaiting_agreement", "completed")
OUTCOMES = ("remission", "response", "partial", "not_improving")


class DemoDataError(ValueError):
    """A demo data file that does not fit: the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Text = Field(min_length=1)


class StaffIn(_Strict):
    role: Role
    name: str = Text


class ClinicIn(_Strict):
    key: str = Text
    name: str = Text
    # A federally assisted substance-use disorder program (42 CFR Part 2).
    part2_program: bool = False
    staff: list[StaffIn]

    @field_validator("staff")
    @classmethod
    def _one_of_each(cls, staff: list[StaffIn]) -> list[StaffIn]:
        roles = [s.role for s in staff]
        if len(set(roles)) != len(roles):
            raise ValueError("each role is held once in a clinic")
        if Role.care_manager not in roles:
            raise ValueError("a clinic's team needs a care manager")
        return staff


class ClinicFile(_Strict):
    clinics: list[ClinicIn] = Field(min_length=1)


class FamilyMemberIn(_Strict):
    name: str = Text
    relationship: str = Text
    shares_plan: bool


class PatientIn(_Strict):
    given_name: str = Text
    family_name: str = Text
    preferred_name: str | None = None
    birth_date: date
    gender: Literal["female", "male", "other", "unknown"]
    language: Literal["en", "es"]
    clinic: str = Text
    plan: str = Text
    stage: Literal[STAGES]  # type: ignore[valid-type]
    family_member: FamilyMemberIn | None = None
    outcome: Literal[OUTCOMES] | None = None  # type: ignore[valid-type]
    last_check_in_day: int | None = Field(default=None, lt=0)
    # Staff of another clinic on the patient's care team, "<clinic>.<role>".
    also_on_team: list[str] = []


class PatientFile(_Strict):
    patients: list[PatientIn] = Field(min_length=1)


class ConcernIn(_Strict):
    description: str = Text
    code_system: Literal["icd10", "snomed"] | None = None
    code: str | None = None


class GoalIn(_Strict):
    statement: str = Text
    category: str = Text
    measure: str | None = None
    target: str | None = None
    due_in_days: int = Field(gt=0)
    priority: Literal["high", "medium", "low"]
    milestones: list[str] = []


class InterventionIn(_Strict):
    kind: str = Text
    description: str = Text
    responsible: Role
    frequency: str | None = None
    status: str = Text


class StepIn(_Strict):
    description: str = Text
    owner: Role  # `patient`: the patient's own step
    due_in_days: int = Field(gt=0)


class BarrierIn(_Strict):
    kind: str = Text
    description: str = Text
    way_around: str = Text


class ContingencyIn(_Strict):
    if_this: str = Text
    then_we: str = Text


class PlanFile(_Strict):
    concerns: list[ConcernIn] = Field(min_length=1)
    goals: list[GoalIn] = Field(min_length=1)
    interventions: list[InterventionIn] = Field(min_length=1)
    action_steps: list[StepIn] = []
    strengths: list[str] = []
    barriers: list[BarrierIn] = []
    contingencies: list[ContingencyIn] = []
    preferences: dict[str, str | bool] = {}


class TeamWordsFile(_Strict):
    spanish: dict[str, str]
    programs: dict[str, str]
    aids: dict[str, str]
    questions: dict[str, str]


SAFETY_STEPS = {
    # what a step does: the fields it needs besides its time
    "acknowledge": ("patient", "by"),
    "close": ("patient", "by", "outcome", "note"),
    "write_safety_plan": ("patient", "by", "reason", "content"),
    "add_reason_to_safety_plan": ("patient", "by", "reason"),
    "share_safety_plan": ("patient", "by"),
    "follow_up": ("patient", "by", "note"),
    "record_in_clinic": ("patient", "by", "instrument", "answers"),
    "flag": ("patient", "by", "tier", "reason"),
    "portal_phq9": ("patient", "by", "item9"),
    "escalate": (),
    "raise_missed_follow_ups": (),
}


class SafetyEventIn(_Strict):
    """One step of a safety story (safety.yaml)."""

    do: Literal[tuple(SAFETY_STEPS)]  # type: ignore[valid-type]
    patient: str | None = None  # "Given Family"
    by: str | None = None  # "<clinic>.<role>" or "patient"
    day: int | None = None
    hour: int | None = Field(default=None, ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    minutes_ago: int | None = Field(default=None, gt=0)
    outcome: str | None = None
    risk_after: str | None = None
    no_follow_up: bool = False
    note: str | None = None
    reason: str | None = None
    content: dict[str, Any] | None = None
    tier: Literal["high", "urgent"] | None = None
    instrument: str | None = None
    answers: dict[str, int] | None = None
    item9: int | None = Field(default=None, ge=0, le=3)

    @model_validator(mode="after")
    def _complete(self) -> SafetyEventIn:
        for name in SAFETY_STEPS[self.do]:
            if getattr(self, name) in (None, ""):
                raise ValueError(f"`{self.do}` needs `{name}`")
        if (self.minutes_ago is None) == (self.day is None or self.hour is None):
            raise ValueError("give either `day` and `hour`, or `minutes_ago`")
        return self


class SafetyFile(_Strict):
    events: list[SafetyEventIn] = Field(min_length=1)


class EhrRecordIn(_Strict):
    """What the EHR sends about one demo patient (ehr.yaml): days from the 1st of January of
    the year the demo is built in."""

    patient: str = Text  # "Given Family"
    # CMS159's denominator identification period: 14 to 2 months before the year begins.
    depression_visit_day: int | None = Field(default=None, ge=-420, le=-70)
    phq9: list[tuple[int, int]] = []
    screening_visit_day: int | None = Field(default=None, ge=0, le=364)
    screen: Literal["negative", "positive"] | None = None

    @model_validator(mode="after")
    def _complete(self) -> EhrRecordIn:
        for day, total in self.phq9:
            if not 0 <= total <= 27:
                raise ValueError(f"phq9: a total is 0 to 27, not {total} (day {day})")
        if self.phq9 and self.depression_visit_day is None:
            raise ValueError("phq9 needs `depression_visit_day`")
        if (self.screening_visit_day is None) != (self.screen is None):
            raise ValueError("give `screening_visit_day` and `screen` together")
        if self.depression_visit_day is None and self.screening_visit_day is None:
            raise ValueError("give `depression_visit_day` or `screening_visit_day`")
        return self


class EhrFile(_Strict):
    records: list[EhrRecordIn] = Field(min_length=1)


class StoryInterventionIn(_Strict):
    """An intervention a story's author adds (they are responsible for it)."""

    kind: str = Text
    description: str = Text
    frequency: str | None = None
    status: str = "in_progress"


class StoryStrengthIn(_Strict):
    description: str = Text


# A story's plan item, by section: the fields it takes.
STORY_SECTIONS: dict[str, type[BaseModel]] = {
    "concerns": ConcernIn,
    "goals": GoalIn,
    "interventions": StoryInterventionIn,
    "strengths": StoryStrengthIn,
}


class StoryProtocolIn(_Strict):
    """A protocol line in a story: the medication (its RxCUI, on the patient's list), what is
    monitored and by whom, and who is told of a change (`<clinic>.<role>`)."""

    rxcui: str = Text
    monitoring: str | None = None
    monitor: str | None = None
    tell: list[str] = []


class StoryEventIn(_Strict):
    """One step of the co-occurring story (part2.yaml)."""

    do: Literal["plan_item", "contact", "medication", "medication_report", "protocol", "moud"]
    patient: str = Text  # "Given Family"
    by: str = Text  # "<clinic>.<role>", or "patient" (a medication_report)
    day: int = Field(lt=0)
    hour: int = Field(ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    section: Literal[tuple(STORY_SECTIONS)] | None = None  # type: ignore[valid-type]
    item: dict[str, Any] | None = None
    kind: str | None = None
    mode: str | None = None
    minutes: int | None = Field(default=None, gt=0)
    note: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> StoryEventIn:
        needs = {
            "plan_item": ("section", "item"),
            "contact": ("kind", "mode", "minutes"),
            # A medication prescribed by `by` (its fields as MedicationIn; started that day),
            # or one the patient says they take (`by: patient`; fields as ReportedIn).
            "medication": ("item",),
            "medication_report": ("item",),
            # A line of the joint prescribing protocol (fields as StoryProtocolIn).
            "protocol": ("item",),
            # A MOUD record dated that day (fields as MoudIn without `on`; `rxcui` names the
            # MOUD medication on the list, if any).
            "moud": ("item",),
        }[self.do]
        for name in needs:
            if getattr(self, name) in (None, ""):
                raise ValueError(f"`{self.do}` needs `{name}`")
        if self.do == "plan_item":
            assert self.section is not None
            STORY_SECTIONS[self.section].model_validate(self.item)
        elif self.do == "medication":
            MedicationIn.model_validate(self.item)
        elif self.do == "medication_report":
            if self.by != "patient":
                raise ValueError("`medication_report` is the patient's: `by: patient`")
            ReportedIn.model_validate(self.item)
        elif self.do == "protocol":
            StoryProtocolIn.model_validate(self.item)
        elif self.do == "moud":
            assert self.item is not None
            fields = {k: v for k, v in self.item.items() if k != "rxcui"}
            MoudIn.model_validate({"on": "2026-01-01", **fields})
        return self

    def plan_item(self) -> BaseModel:
        assert self.section is not None
        return STORY_SECTIONS[self.section].model_validate(self.item)


class StoryFile(_Strict):
    events: list[StoryEventIn] = Field(min_length=1)


class MessageStepIn(_Strict):
    """One message of a demo thread (messages.yaml)."""

    by: str = Text  # "patient", or "<clinic>.<role>"
    day: int = Field(le=0)
    hour: int = Field(ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    body: str = Text


class MessageCloseIn(_Strict):
    """A team member closes the thread once it needs no more answer (messages.yaml)."""

    by: str = Text  # "<clinic>.<role>"
    day: int = Field(le=0)
    hour: int = Field(ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)


class MessageThreadIn(_Strict):
    patient: str = Text  # "Given Family"
    kind: Literal["patient", "team"]
    subject: str = Text
    messages: list[MessageStepIn] = Field(min_length=1)
    closed: MessageCloseIn | None = None


class MessagesFile(_Strict):
    threads: list[MessageThreadIn] = []


@dataclass(frozen=True)
class DemoContent:
    """The files' content in the shapes demo.py builds from."""

    clinics: dict[str, str]
    staff: dict[str, list[tuple[Role, str]]]
    # (given, family, preferred, birth date, gender, language, clinic, profile, stage)
    patients: list[tuple[Any, ...]]
    related: dict[tuple[str, str], tuple[str, str, bool]]
    story_outcomes: dict[tuple[str, str], str]
    story_last_check_in: dict[tuple[str, str], int]
    profiles: dict[str, dict[str, Any]]
    spanish: dict[str, str]
    programs: dict[str, str]
    aids: dict[str, str]
    questions: dict[str, str]
    safety_events: list[SafetyEventIn]
    # The clinics that are 42 CFR Part 2 programs (by key).
    part2_programs: frozenset[str] = frozenset()
    # Staff of other clinics on a patient's team: (given, family) -> ["<clinic>.<role>"].
    also_on_team: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    story_events: list[StoryEventIn] = field(default_factory=list)
    # What the EHR sends about the patients (ehr.yaml).
    ehr_records: list[EhrRecordIn] = field(default_factory=list)
    # Secure message threads (messages.yaml).
    message_threads: list[MessageThreadIn] = field(default_factory=list)


M = TypeVar("M", bound=BaseModel)


def _read(data_dir: Path, path: Path, model: type[M]) -> M:
    name = path.relative_to(data_dir.parent).as_posix()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DemoDataError(f"{name}: cannot be read: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(the file)"
        raise DemoDataError(f"{name}: {where}: {first['msg']}") from exc


def _profile(plan: PlanFile) -> dict[str, Any]:
    return {
        "concerns": [(c.description, c.code_system, c.code) for c in plan.concerns],
        "goals": [
            (g.statement, g.category, g.measure, g.target, g.due_in_days, g.priority, g.milestones)
            for g in plan.goals
        ],
        "interventions": [
            (i.kind, i.description, i.responsible, i.frequency, i.status)
            for i in plan.interventions
        ],
        "steps": [
            (s.description, None if s.owner == Role.patient else s.owner, s.due_in_days)
            for s in plan.action_steps
        ],
        "strengths": list(plan.strengths),
        "barriers": [(b.kind, b.description, b.way_around) for b in plan.barriers],
        "contingencies": [(c.if_this, c.then_we) for c in plan.contingencies],
        "preferences": dict(plan.preferences),
    }


def _check_references(
    data_dir: Path,
    clinics: ClinicFile,
    patients: PatientFile,
    profiles: dict[str, Any],
    words: TeamWordsFile,
    safety: SafetyFile,
    story: StoryFile,
    ehr_file: EhrFile | None = None,
) -> None:
    keys = {c.key for c in clinics.clinics}
    seen: set[tuple[str, str]] = set()
    for n, p in enumerate(patients.patients):
        where = f"{data_dir.name}/patients.yaml: patients.{n}"
        if p.clinic not in keys:
            raise DemoDataError(f"{where}.clinic: no clinic {p.clinic!r} in clinic.yaml")
        if p.plan not in profiles:
            raise DemoDataError(f"{where}.plan: no plans/{p.plan}.yaml")
        if (p.given_name, p.family_name) in seen:
            raise DemoDataError(f"{where}.family_name: a second patient of that name")
        seen.add((p.given_name, p.family_name))
    names = {f"{p.given_name} {p.family_name}" for p in patients.patients}
    staff = {f"{c.key}.{s.role.value}" for c in clinics.clinics for s in c.staff}
    for n, event in enumerate(safety.events):
        where = f"{data_dir.name}/safety.yaml: events.{n}"
        if event.patient is not None and event.patient not in names:
            raise DemoDataError(f"{where}.patient: no patient {event.patient!r} in patients.yaml")
        if event.by is not None and event.by != "patient" and event.by not in staff:
            raise DemoDataError(f"{where}.by: no {event.by!r} in clinic.yaml")
    for n, p in enumerate(patients.patients):
        for m, member in enumerate(p.also_on_team):
            if member not in staff:
                where = f"{data_dir.name}/patients.yaml: patients.{n}.also_on_team.{m}"
                raise DemoDataError(f"{where}: no {member!r} in clinic.yaml")
    for n, step in enumerate(story.events):
        where = f"{data_dir.name}/part2.yaml: events.{n}"
        if step.patient not in names:
            raise DemoDataError(f"{where}.patient: no patient {step.patient!r} in patients.yaml")
        if step.by not in staff and not (step.by == "patient" and step.do == "medication_report"):
            raise DemoDataError(f"{where}.by: no {step.by!r} in clinic.yaml")
        if step.do == "protocol":
            line = StoryProtocolIn.model_validate(step.item)
            for m, member in enumerate([line.monitor, *line.tell]):
                if member is not None and member not in staff:
                    raise DemoDataError(f"{where}.item: no {member!r} in clinic.yaml ({m})")
    seen_records: set[str] = set()
    for n, rec in enumerate(ehr_file.records if ehr_file else []):
        where = f"{data_dir.name}/ehr.yaml: records.{n}.patient"
        if rec.patient not in names:
            raise DemoDataError(f"{where}: no patient {rec.patient!r} in patients.yaml")
        if rec.patient in seen_records:
            raise DemoDataError(f"{where}: a second record for {rec.patient!r}")
        seen_records.add(rec.patient)
    for name in words.programs:
        if name not in profiles:
            raise DemoDataError(f"{data_dir.name}/team_words.yaml: programs.{name}: no such plan")


@functools.cache
def content(data_dir: Path = DATA_DIR) -> DemoContent:
    """Read and check every demo data file (once per directory)."""
    clinics = _read(data_dir, data_dir / "clinic.yaml", ClinicFile)
    patients = _read(data_dir, data_dir / "patients.yaml", PatientFile)
    words = _read(data_dir, data_dir / "team_words.yaml", TeamWordsFile)
    profiles = {
        path.stem: _profile(_read(data_dir, path, PlanFile))
        for path in sorted((data_dir / "plans").glob("*.yaml"))
    }
    safety = _read(data_dir, data_dir / "safety.yaml", SafetyFile)
    story = _read(data_dir, data_dir / "part2.yaml", StoryFile)
    ehr_file = _read(data_dir, data_dir / "ehr.yaml", EhrFile)
    threads = _read(data_dir, data_dir / "messages.yaml", MessagesFile)
    names = {f"{p.given_name} {p.family_name}" for p in patients.patients}
    for n, thread in enumerate(threads.threads):
        if thread.patient not in names:
            raise DemoDataError(
                f"{data_dir.name}/messages.yaml: threads.{n}.patient: no patient "
                f"{thread.patient!r} in patients.yaml"
            )
        if thread.kind == "team" and any(m.by == "patient" for m in thread.messages):
            raise DemoDataError(
                f"{data_dir.name}/messages.yaml: threads.{n}: a team thread has no patient messages"
            )
    _check_references(data_dir, clinics, patients, profiles, words, safety, story, ehr_file)
    who = [((p.given_name, p.family_name), p) for p in patients.patients]
    return DemoContent(
        clinics={c.key: c.name for c in clinics.clinics},
        staff={c.key: [(s.role, s.name) for s in c.staff] for c in clinics.clinics},
        patients=[
            (p.given_name, p.family_name, p.preferred_name, p.birth_date, p.gender)
            + (p.language, p.clinic, p.plan, p.stage)
            for p in patients.patients
        ],
        related={
            k: (p.family_member.name, p.family_member.relationship, p.family_member.shares_plan)
            for k, p in who
            if p.family_member
        },
        story_outcomes={k: p.outcome for k, p in who if p.outcome},
        story_last_check_in={
            k: p.last_check_in_day for k, p in who if p.last_check_in_day is not None
        },
        profiles=profiles,
        spanish=dict(words.spanish),
        programs=dict(words.programs),
        aids=dict(words.aids),
        questions=dict(words.questions),
        safety_events=list(safety.events),
        part2_programs=frozenset(c.key for c in clinics.clinics if c.part2_program),
        also_on_team={k: list(p.also_on_team) for k, p in who if p.also_on_team},
        story_events=list(story.events),
        ehr_records=list(ehr_file.records),
        message_threads=list(threads.threads),
    )
