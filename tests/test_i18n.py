"""Every user-facing string goes through the translation catalog, and Spanish is complete."""

from __future__ import annotations

from concord.i18n import Msg, translate, translations
from concord.i18n_tools import check


def test_the_spanish_catalog_covers_every_string_in_use():
    report = check("es")
    assert report.missing == [], (
        f"{len(report.missing)} strings lack a Spanish translation; run "
        f"`python scripts/i18n.py update` and translate them: {report.missing[:20]}"
    )
    assert report.fuzzy == []
    assert report.bad_placeholders == []


def test_messages_with_values_translate_and_keep_the_values():
    message = Msg("must be at most %(max)s characters", max=1000)
    assert str(message) == "must be at most 1000 characters"
    spanish = translate(message, "es")
    assert "1000" in spanish and spanish != str(message)


def test_an_unknown_language_falls_back_to_english():
    assert translations("xx").gettext("Your goals") == "Your goals"
