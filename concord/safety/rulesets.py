"""An organization's stored risk rules and the set in force (the rule language is `rules.py`)."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from concord.accounts.models import Organization, User
from concord.audit.service import record
from concord.clock import now
from concord.db import core
from concord.errors import InvalidInput
from concord.i18n import Msg
from concord.measures.library import library
from concord.safety.models import (
    RiskRuleSet,
)
from concord.safety.rules import (
    RuleFileError,
    RuleSet,
    compile_rules,
    default_rules,
    parse_rules,
)

log = logging.getLogger("concord.safety")


def rules_for(session: Session, organization_id: uuid.UUID) -> RuleSet:
    """The organization's newest rule file that still compiles, else Concord's defaults.

    A file is checked fully when it is loaded; this second check only guards against the
    instrument library changing under it (a clinic removing an instrument its rules name).
    Stored rule files never change (a new file is a new set), so each text is read once per
    process; every call still asks the database which sets are newest, so a file loaded
    through another process is in force here at once."""
    connection = core(session)
    newest = connection.execute(_NEWEST_SETS, {"organization": organization_id}).scalars().all()
    for set_id in newest:
        text = _set_texts.get(set_id)
        if text is None:
            text = connection.execute(_SET_TEXT, {"id": set_id}).scalar() or ""
            if len(_set_texts) >= 256:
                _set_texts.clear()
            _set_texts[set_id] = text
        try:
            return compile_rules(text)
        except RuleFileError as exc:
            log.error("risk rule set %s no longer compiles: %s", set_id, exc.problem)
    return default_rules()


# A stored rule set's text by its id (sets are immutable once stored).
_set_texts: dict[uuid.UUID, str] = {}


# Asked on every check-in and every clinician's page: built once.
_NEWEST_SETS = (
    select(RiskRuleSet.id)
    .where(RiskRuleSet.organization_id == bindparam("organization"))
    .order_by(RiskRuleSet.number.desc())
    .limit(5)
)


_SET_TEXT = select(RiskRuleSet.text).where(RiskRuleSet.id == bindparam("id"))


def current_rule_set(session: Session, organization_id: uuid.UUID) -> RiskRuleSet | None:
    return session.scalar(
        select(RiskRuleSet)
        .where(RiskRuleSet.organization_id == organization_id)
        .order_by(RiskRuleSet.number.desc())
        .limit(1)
    )


def load_rules(
    session: Session, *, by: User | None, organization: Organization, text: str
) -> RiskRuleSet:
    """Check a rule file fully and, if it passes, put it in force. A refused file writes
    nothing: the rules already in force stay."""
    if not text.strip():
        raise InvalidInput.field("rules", Msg("is empty: paste or upload a risk-rules file"))
    try:
        parsed = parse_rules(text, name="rules", library=library())
    except RuleFileError as exc:
        raise InvalidInput(
            Msg("The rules were not loaded; the rules in force are unchanged."),
            errors={"rules": f"{exc.where}: {exc.problem}"},
        ) from None
    last = session.scalar(
        select(func.max(RiskRuleSet.number)).where(RiskRuleSet.organization_id == organization.id)
    )
    row = RiskRuleSet(
        organization_id=organization.id,
        number=(last or 0) + 1,
        code=parsed.code,
        version=parsed.version,
        text=text,
        loaded_by_id=by.id if by else None,
        loaded_at=now(),
    )
    session.add(row)
    session.flush()
    record(
        session,
        by=by,
        action="update",
        object_type="RiskRules",
        object_id=row.id,
        organization_id=organization.id,
        detail={"code": parsed.code, "version": parsed.version, "number": row.number},
    )
    return row


def rule_sets(session: Session, organization_id: uuid.UUID) -> list[RiskRuleSet]:
    return list(
        session.scalars(
            select(RiskRuleSet)
            .where(RiskRuleSet.organization_id == organization_id)
            .order_by(RiskRuleSet.number.desc())
        )
    )
