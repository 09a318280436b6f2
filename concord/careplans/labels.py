"""Plain-language names for the plan's sections and fields. They are msgids: pages translate
them with `_()`. The coded values and roles shown app-wide are in `concord/labels.py`."""

from __future__ import annotations

from concord.i18n import N_

SECTION_LABELS = {
    "plan": N_("plan"),
    "concerns": N_("concern"),
    "goals": N_("goal"),
    "milestones": N_("milestone"),
    "interventions": N_("treatment or support"),
    "action_steps": N_("action step"),
    "strengths": N_("strength"),
    "barriers": N_("barrier"),
    "contingencies": N_("plan for when things get hard"),
    "preferences": N_("preferences and values"),
}

FIELD_LABELS = {
    "title": N_("title"),
    "status": N_("status"),
    "activated_on": N_("start date"),
    "next_review_on": N_("next review"),
    "last_reviewed_on": N_("last review"),
    "ended_on": N_("end date"),
    "end_reason": N_("reason for ending"),
    "description": N_("description"),
    "code_system": N_("code system"),
    "code": N_("code"),
    "statement": N_("goal in the patient's words"),
    "category": N_("area of life"),
    "measure": N_("how we will measure it"),
    "target": N_("target"),
    "due_on": N_("due date"),
    "priority": N_("priority"),
    "proposed_by": N_("proposed by"),
    "goal": N_("goal"),
    "target_on": N_("target date"),
    "reached_on": N_("date reached"),
    "kind": N_("type"),
    "responsible": N_("responsible"),
    "frequency": N_("how often"),
    "owner": N_("who"),
    "done_on": N_("date done"),
    "way_around": N_("agreed way around it"),
    "if_this": N_("if this happens"),
    "then_we": N_("we will do this"),
    "measure_instrument": N_("linked questionnaire"),
    "measure_op": N_("comparison"),
    "measure_value": N_("score"),
    "substance": N_("substance"),
    "use_aim": N_("aim"),
    "what_matters_most": N_("what matters most"),
    "treatment_preferences": N_("treatment preferences"),
    "monitoring_intensity": N_("how closely to check in"),
    "appointment_frequency": N_("appointment frequency"),
    "preferred_language": N_("preferred language"),
    "interpreter_needed": N_("interpreter needed"),
    "cultural_considerations": N_("cultural or faith considerations"),
    "others_involved": N_("who else may be involved"),
}
