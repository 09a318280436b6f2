"""What the account and administration pages may send: one model per form, read with
concord.web.forms like every other page's. These pages have no JSON twin (signing in and
credentials are the browser's; administration is page only: tests/test_api_twins.py).

Nothing here strips what was typed: a password is exactly what the person typed."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from concord.i18n import N_
from concord.validation import Checkbox


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SignInIn(_Form):
    email: str = ""
    password: str = ""
    next: str = ""  # where to go once signed in (checked by safe_next)


class CodeIn(_Form):
    """A second-factor code: from the app, or a recovery code."""

    code: str = ""
    next: str = ""


class LanguageIn(_Form):
    language: str = ""
    next: str = ""


class PasswordChangeIn(_Form):
    current_password: str = ""
    new_password: str = ""
    confirm_password: str = ""


class TokenIn(_Form):
    """An API token: its name, what it may do, and how long it lasts (blank: until revoked)."""

    name: str = ""
    scope: str = "read"
    expires_in: Annotated[
        str, BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v)
    ] = ""


class UserIn(_Form):
    email: str = ""
    name: str = ""
    role: str = ""
    clinic_id: str = ""
    is_admin: Checkbox = False
    language: str = "en"


class UserUpdateIn(_Form):
    name: str = ""
    role: str = ""
    is_admin: Checkbox = False
    active: Checkbox = False
    clinic_id: str = ""
    language: str | None = None  # none sent: the person's language stays


def _days(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        if not value.isdigit():
            raise ValueError(N_("must be a number of days from 1 to 366"))
    return value


class SettingsIn(_Form):
    require_mfa_for_clinicians: Checkbox = False
    sso_required: Checkbox = False
    review_interval_days: Annotated[int | None, BeforeValidator(_days)] = None
    pdmp_check_interval_days: Annotated[int | None, BeforeValidator(_days)] = None
    crisis_resources: str = ""
    on_call_user_id: str = ""
    # Telehealth and visit reminders (issue 22); absent: unchanged.
    video_url_template: str | None = None
    video_join_minutes: str | None = None
    visit_reminders: str | None = None
