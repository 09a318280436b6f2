"""The fields each plan form shows, so one form macro renders every kind of item."""

from __future__ import annotations

from dataclasses import dataclass

from concord.i18n import N_


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # text, textarea, date, select, checkbox
    label: str
    required: bool = False
    options: str | None = None  # the name of an option list in the page context
    hint: str | None = None
    blank: bool = False  # a select that may be left empty


FORMS: dict[str, list[FieldSpec]] = {
    "concerns": [
        FieldSpec(
            "description",
            "textarea",
            N_("Concern"),
            required=True,
            hint=N_("The problem, in words the patient recognises"),
        ),
        FieldSpec("code_system", "select", N_("Code system"), options="code_systems", blank=True),
        FieldSpec("code", "text", N_("Code"), hint=N_("Optional, e.g. F32.1 (ICD-10-CM)")),
        FieldSpec("status", "select", N_("Status"), options="concern_statuses"),
    ],
    "goals": [
        FieldSpec("statement", "textarea", N_("Goal, in the patient's own words"), required=True),
        FieldSpec(
            "category", "select", N_("Area of life"), required=True, options="goal_categories"
        ),
        FieldSpec(
            "measure",
            "text",
            N_("How we will measure it"),
            hint=N_("e.g. PHQ-9 score, days walked each week"),
        ),
        FieldSpec("target", "text", N_("Target"), hint=N_("e.g. under 10; 3 days a week")),
        FieldSpec("due_on", "date", N_("Due date")),
        FieldSpec("priority", "select", N_("Priority to the patient"), options="priorities"),
        FieldSpec("status", "select", N_("Status"), options="goal_statuses"),
        FieldSpec(
            "measure_instrument",
            "select",
            N_("Linked questionnaire (optional)"),
            options="measure_instruments",
            blank=True,
            hint=N_("Link the goal to a score to follow it on the progress chart"),
        ),
        FieldSpec(
            "measure_op", "select", N_("The score should be"), options="measure_ops", blank=True
        ),
        FieldSpec("measure_value", "number", N_("Score"), hint=N_("e.g. 10 for PHQ-9 below 10")),
        FieldSpec(
            "substance",
            "select",
            N_("Substance (substance-use goals)"),
            options="substances",
            blank=True,
            hint=N_("For a goal about alcohol or drug use: one goal per substance"),
        ),
        FieldSpec(
            "use_aim",
            "select",
            N_("Aim"),
            options="use_aims",
            blank=True,
            hint=N_(
                "Not using at all, or using less. Follow it on the days-of-use calendar: link "
                "the goal to days of use in the last 30 days or drinks per drinking day"
            ),
        ),
        FieldSpec(
            "social_concern_id",
            "select",
            N_("Social need it addresses (optional)"),
            options="social_concern_options",
            blank=True,
            hint=N_("One of the patient's open social needs, from their social-needs page"),
        ),
    ],
    "milestones": [
        FieldSpec("goal_id", "select", N_("Goal"), required=True, options="goal_options"),
        FieldSpec("description", "text", N_("Milestone"), required=True),
        FieldSpec("target_on", "date", N_("Target date")),
        FieldSpec("reached_on", "date", N_("Date reached")),
    ],
    "interventions": [
        FieldSpec("kind", "select", N_("Type"), required=True, options="intervention_kinds"),
        FieldSpec(
            "description",
            "textarea",
            N_("What"),
            required=True,
            hint=N_("e.g. Sertraline 50 mg daily; weekly CBT sessions"),
        ),
        FieldSpec(
            "responsible_id", "select", N_("Responsible"), options="member_options", blank=True
        ),
        FieldSpec("frequency", "text", N_("How often")),
        FieldSpec("status", "select", N_("Status"), options="intervention_statuses"),
        FieldSpec("goal_id", "select", N_("For goal"), options="goal_options", blank=True),
    ],
    "action_steps": [
        FieldSpec(
            "description",
            "text",
            N_("Step"),
            required=True,
            hint=N_("Small and concrete, e.g. Walk 10 minutes after lunch"),
        ),
        FieldSpec("owner", "select", N_("Who"), required=True, options="owner_options"),
        FieldSpec("due_on", "date", N_("Due date")),
        FieldSpec("status", "select", N_("Status"), options="step_statuses"),
        FieldSpec("goal_id", "select", N_("For goal"), options="goal_options", blank=True),
    ],
    "strengths": [
        FieldSpec(
            "description",
            "text",
            N_("Strength"),
            required=True,
            hint=N_("e.g. Close to my sister; good at keeping routines"),
        ),
    ],
    "barriers": [
        FieldSpec("kind", "select", N_("Type"), required=True, options="barrier_kinds"),
        FieldSpec("description", "text", N_("Barrier"), required=True),
        FieldSpec("way_around", "textarea", N_("Agreed way around it")),
        FieldSpec("status", "select", N_("Status"), options="barrier_statuses"),
    ],
    "contingencies": [
        FieldSpec(
            "if_this",
            "text",
            N_("If this happens"),
            required=True,
            hint=N_("e.g. side effects, a missed appointment, symptoms get worse"),
        ),
        FieldSpec("then_we", "textarea", N_("We will do this"), required=True),
    ],
}

SECTION_TITLES = {
    "concerns": N_("Concerns"),
    "goals": N_("Goals"),
    "milestones": N_("Milestones"),
    "interventions": N_("Treatment and support"),
    "action_steps": N_("Action steps"),
    "strengths": N_("Strengths"),
    "barriers": N_("Barriers"),
    "contingencies": N_("When things get hard"),
}

ADD_LABELS = {
    "concerns": N_("Add a concern"),
    "goals": N_("Add a goal"),
    "milestones": N_("Add a milestone"),
    "interventions": N_("Add treatment or support"),
    "action_steps": N_("Add an action step"),
    "strengths": N_("Add a strength"),
    "barriers": N_("Add a barrier"),
    "contingencies": N_('Add an "if this happens" plan'),
}

# The order of the sections on the clinician's page (milestones sit inside goals).
PAGE_SECTIONS = (
    "concerns",
    "goals",
    "interventions",
    "action_steps",
    "strengths",
    "barriers",
    "contingencies",
)


PREFERENCE_FORM: list[FieldSpec] = [
    FieldSpec("what_matters_most", "textarea", N_("What matters most to the patient")),
    FieldSpec(
        "treatment_preferences",
        "textarea",
        N_("Treatment preferences"),
        hint=N_("e.g. would rather try therapy before medication"),
    ),
    FieldSpec(
        "monitoring_intensity",
        "select",
        N_("How closely to check in"),
        options="monitoring",
        blank=True,
    ),
    FieldSpec("appointment_frequency", "text", N_("Preferred appointment frequency")),
    FieldSpec("preferred_language", "text", N_("Preferred language for care")),
    FieldSpec("interpreter_needed", "checkbox", N_("Needs an interpreter")),
    FieldSpec("cultural_considerations", "textarea", N_("Cultural or faith considerations")),
    FieldSpec(
        "others_involved",
        "textarea",
        N_("Who else may be involved"),
        hint=N_("Family, friends or others the patient wants involved, and how"),
    ),
]


def item_form_values(section: str, item: object) -> dict[str, str]:
    """An item's current values as an edit form shows them."""
    values: dict[str, str] = {}
    for spec in FORMS[section]:
        if spec.name == "owner":
            owner_is_patient = item.owner_is_patient
            owner_id = item.owner_id
            values["owner"] = "patient" if owner_is_patient else str(owner_id or "")
            continue
        value = getattr(item, spec.name)
        if value is None:
            values[spec.name] = ""
        elif hasattr(value, "isoformat"):
            values[spec.name] = value.isoformat()
        else:
            values[spec.name] = str(value)
    return values


def preference_values(plan: object) -> dict[str, object]:
    return {spec.name: getattr(plan, spec.name) or "" for spec in PREFERENCE_FORM}
