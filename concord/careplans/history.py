"""Snapshots of a whole plan, and what changed between two of them, in words a person reads.

A snapshot is plain JSON: sections of items keyed by id, values as shown to people (names
rather than ids, ISO dates, coded values). Comparing two snapshots lists additions, removals
and field-by-field changes; pages render those with translated labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from concord.careplans.models import (
    ActionStep,
    Barrier,
    CarePlan,
    Concern,
    Contingency,
    Goal,
    Intervention,
    Milestone,
    Strength,
)

PLAN_FIELDS = (
    "title",
    "status",
    "activated_on",
    "next_review_on",
    "last_reviewed_on",
    "ended_on",
    "end_reason",
)
PREFERENCE_FIELDS = (
    "what_matters_most",
    "treatment_preferences",
    "monitoring_intensity",
    "appointment_frequency",
    "preferred_language",
    "interpreter_needed",
    "cultural_considerations",
    "others_involved",
)

# For each section: the fields compared, and the one that names an item in a sentence.
SECTION_FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "concerns": (("description", "code_system", "code", "status"), "description"),
    "goals": (
        (
            "statement",
            "category",
            "measure",
            "target",
            "due_on",
            "priority",
            "status",
            "proposed_by",
            "measure_instrument",
            "measure_op",
            "measure_value",
            "substance",
            "use_aim",
        ),
        "statement",
    ),
    "milestones": (("goal", "description", "target_on", "reached_on"), "description"),
    "interventions": (
        ("kind", "description", "responsible", "frequency", "status", "goal"),
        "description",
    ),
    "action_steps": (("description", "owner", "due_on", "status", "goal"), "description"),
    "strengths": (("description",), "description"),
    "barriers": (("kind", "description", "way_around", "status"), "description"),
    "contingencies": (("if_this", "then_we"), "if_this"),
}
SECTIONS = tuple(SECTION_FIELDS)


@dataclass
class PlanContents:
    """The plan's current (not removed) items, loaded once."""

    plan: CarePlan
    concerns: list[Concern]
    goals: list[Goal]
    milestones: list[Milestone]
    interventions: list[Intervention]
    action_steps: list[ActionStep]
    strengths: list[Strength]
    barriers: list[Barrier]
    contingencies: list[Contingency]

    def milestones_for(self, goal_id: Any) -> list[Milestone]:
        return sorted(
            (m for m in self.milestones if m.goal_id == goal_id),
            key=lambda m: (m.target_on or date.max, m.created_at),
        )

    def goal_statement(self, goal_id: Any) -> str | None:
        for goal in self.goals:
            if goal.id == goal_id:
                return goal.statement
        return None


def _value(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return value


def _item_values(section: str, item: Any, contents: PlanContents) -> dict[str, Any]:
    values: dict[str, Any] = {}
    fields, _ = SECTION_FIELDS[section]
    for name in fields:
        if name == "proposed_by":
            values[name] = "patient" if item.proposed_by_patient else item.proposed_by.name
        elif name == "goal":
            values[name] = contents.goal_statement(item.goal_id) if item.goal_id else None
        elif name == "responsible":
            values[name] = item.responsible.name if item.responsible else None
        elif name == "owner":
            values[name] = (
                "patient" if item.owner_is_patient else (item.owner.name if item.owner else None)
            )
        else:
            values[name] = _value(getattr(item, name))
    return values


def snapshot(contents: PlanContents) -> dict[str, Any]:
    plan = contents.plan
    data: dict[str, Any] = {
        "plan": {name: _value(getattr(plan, name)) for name in PLAN_FIELDS},
        "preferences": {name: _value(getattr(plan, name)) for name in PREFERENCE_FIELDS},
    }
    for section in SECTIONS:
        data[section] = {
            str(item.id): _item_values(section, item, contents)
            for item in getattr(contents, section)
        }
    return data


@dataclass
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass
class Change:
    section: str
    change: str  # added, removed or changed
    label: str | None
    fields: list[FieldChange] = field(default_factory=list)
    # The item changed (None for the plan and its preferences), and whether it carries the
    # 42 CFR Part 2 label (set by the read that shows the change, from the item's label).
    item_id: str | None = None
    part2: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "change": self.change,
            "label": self.label,
            "fields": [{"field": f.field, "old": f.old, "new": f.new} for f in self.fields],
            "item_id": self.item_id,
            "part2": self.part2,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Change:
        return cls(
            data["section"],
            data["change"],
            data.get("label"),
            [FieldChange(f["field"], f["old"], f["new"]) for f in data.get("fields", [])],
            data.get("item_id"),
            bool(data.get("part2")),
        )


def _field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    return [
        FieldChange(name, old.get(name), new.get(name))
        for name in new
        if old.get(name) != new.get(name)
    ]


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[Change]:
    """What changed from `old` to `new` (an empty `old` means everything was added)."""
    old = old or {}
    changes: list[Change] = []
    for section in ("plan", "preferences"):
        fields = _field_changes(old.get(section, {}), new.get(section, {}))
        if old and fields:
            changes.append(Change(section, "changed", None, fields))
    for section in SECTIONS:
        _, label_field = SECTION_FIELDS[section]
        before: dict[str, Any] = old.get(section, {})
        after: dict[str, Any] = new.get(section, {})
        for item_id, values in after.items():
            if item_id not in before:
                changes.append(Change(section, "added", values.get(label_field), item_id=item_id))
            else:
                fields = _field_changes(before[item_id], values)
                if fields:
                    label = before[item_id].get(label_field)
                    changes.append(Change(section, "changed", label, fields, item_id=item_id))
        for item_id, values in before.items():
            if item_id not in after:
                changes.append(Change(section, "removed", values.get(label_field), item_id=item_id))
    return changes
