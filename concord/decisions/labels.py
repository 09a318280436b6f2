"""Words for the decision pages' codes (translated like everything else)."""

from __future__ import annotations

from concord.decisions.service import SURE_ITEMS
from concord.i18n import N_, Msg
from concord.measures.library import library

ATTRIBUTE_LABELS = {
    "involves": N_("What it involves"),
    "works": N_("How well it works"),
    "how_soon": N_("How soon it helps"),
    "side_effects": N_("Side effects and risks"),
    "effort_cost": N_("Effort, time and cost"),
    "if_stop": N_("If I stop"),
}

STATUS_LABELS = {
    "open": N_("being worked on"),
    "decided": N_("decided"),
    "not_decided": N_("not decided yet"),
    "withdrawn": N_("withdrawn"),
}

# What a "no" on each SURE item says is missing (the Decisional Conflict Scale's domains).
MISSING_LABELS = {
    "certainty": N_("feeling sure about the choice"),
    "information": N_("information about the options, their benefits and risks"),
    "values": N_("being clear about what matters most"),
    "support": N_("enough support and advice"),
}

# The SURE items' names as the test's authors give them (Légaré 2010, abstract). The items'
# wording is OHRI's, free to use but not to redistribute under Concord's licence: a clinic that
# installs it (an instrument file with code SURE, see docs/clinical-sources.md) sees it instead.
SURE_NAMES = {
    "sure": N_("Sure of myself"),
    "understand": N_("Understand information"),
    "risk_benefit": N_("Risk-benefit ratio"),
    "encouragement": N_("Encouragement"),
}


def installed_sure() -> dict[str, object] | None:
    """The SURE wording a clinic installed (an instrument file with code SURE whose items are
    sure, understand, risk_benefit and encouragement), or None."""
    instrument = library().get("SURE")
    if instrument is None or instrument.placeholder:
        return None
    texts = {item.id: item.text for item in instrument.items}
    return {i: texts[i] for i in SURE_ITEMS} if all(i in texts for i in SURE_ITEMS) else None


def sure_items() -> list[tuple[str, object]]:
    """(item, text): the installed SURE wording when a clinic has it, else the items' names."""
    installed = installed_sure()
    if installed:
        return [(i, installed[i]) for i in SURE_ITEMS]
    return [(i, Msg(SURE_NAMES[i])) for i in SURE_ITEMS]
