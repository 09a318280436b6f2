"""English text on a page in another language is marked lang="en" (WCAG 3.1.2), which axe-core
cannot check: a Spanish screen reader otherwise reads English words with Spanish sounds."""

from __future__ import annotations

import re

from concord.web.templating import _lang, env
from tests.conftest import commit


def render(source: str, lang: str, **context) -> str:
    token = _lang.set(lang)
    try:
        return env.from_string(source).render(**context)
    finally:
        _lang.reset(token)


def test_langof_marks_only_an_english_fallback():
    t = "<b{{ text|langof }}>{{ text|pick }}</b>"
    both = {"en": "Hello", "es": "Hola"}
    assert render(t, "es", text=both) == "<b>Hola</b>"
    assert render(t, "es", text={"en": "Hello"}) == '<b lang="en">Hello</b>'
    assert render(t, "en", text={"en": "Hello"}) == "<b>Hello</b>"
    assert render("<ul{{ english_only() }}>", "es") == '<ul lang="en">'
    assert render("<ul{{ english_only() }}>", "en") == "<ul>"


def test_a_decision_aids_english_sources_on_a_spanish_page(client, session, people, sign_in):
    people.patient_user.language = "es"
    commit(session)
    token = sign_in("pat@patients.example.org")
    started = client.post(
        "/my/decisions", data={"csrf_token": token, "aid": "depression-treatment"}
    )
    page = client.get(started.headers["location"]).text
    sources = re.search(r'aria-labelledby="sources-h">.*?</section>', page, re.S)
    assert '<ul lang="en">' in sources.group(0)
    assert 'lang="es"' in page[:300]
