"""A page's form is read with a model, never by hand (issue 17).

Every page route that changes data reads its form through concord.web.forms (FormOf, the
model its API twin takes; tests/test_api_twins.py checks they are the same). Reading fields
out of the posted dict in a route (`form.get("x")`, `form["x"]`, also on `form.values`) is
what this forbids: it is where a page and its API drift apart, and where a bad field turned
into a 500 or was silently ignored instead of named."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from concord.errors import InvalidInput
from concord.registry.schemas import ReviewBody, StatusIn
from concord.safety.schemas import FollowUpIn
from concord.web.forms import back_to, form_input, read_form

ROOT = Path(__file__).resolve().parents[1]

# Routes that read their form by hand: (file, function) -> why. Each must still do so.
BY_HAND: dict[tuple[str, str], str] = {
    # A file upload (multipart), read from Starlette's form: the rules are the file's text (or
    # the text box's), checked whole by load_rules; an administrator's page with no twin.
    ("concord/safety/routes.py", "admin_rules_load"): "a file upload, page only",
    # A message's files (multipart); its text fields are read by FormOf(MessageIn) and the API
    # twin takes the files as base64 in the same model's `files`.
    ("concord/messaging/routes.py", "uploads"): "a message's file uploads",
    # OAuth 2.0 / SMART App Launch: the authorization request's own parameters, echoed back by
    # the consent page and checked whole by concord.smart.service.check_authorize; page only.
    ("concord/smart/routes.py", "authorize_decide"): "the OAuth authorization request",
}


def _is_form(node: ast.AST) -> bool:
    """`form`, or `form.values` (what a Posted form was sent as)."""
    if isinstance(node, ast.Name):
        return node.id == "form"
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "values"
        and isinstance(node.value, ast.Name)
        and node.value.id == "form"
    )


def hand_parsing(source: str) -> dict[str, list[int]]:
    """Function name -> the lines where it reads a posted field by hand."""
    found: dict[str, list[int]] = {}
    tree = ast.parse(source)
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            by_hand = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "getlist", "pop")
                and _is_form(node.func.value)
            ) or (isinstance(node, ast.Subscript) and _is_form(node.value))
            if by_hand:
                found.setdefault(func.name, []).append(node.lineno)
    return found


def _route_files() -> list[Path]:
    files = sorted((ROOT / "concord").glob("*/routes.py"))
    assert len(files) >= 8, "the routes were not found"
    return files


def test_no_page_route_reads_its_form_by_hand():
    offences: dict[tuple[str, str], list[int]] = {}
    for path in _route_files():
        rel = str(path.relative_to(ROOT))
        for name, lines in hand_parsing(path.read_text()).items():
            offences[(rel, name)] = lines
    new = {k: v for k, v in offences.items() if k not in BY_HAND}
    assert new == {}, (
        "read these forms with a model (concord.web.forms.FormOf, the model the API twin "
        f"takes), not field by field: {new}"
    )
    done = sorted(set(BY_HAND) - set(offences))
    assert done == [], f"these read their form with a model now: take them out of BY_HAND: {done}"


@pytest.mark.parametrize(
    "source",
    [
        "def f(form):\n    return str(form.get('x') or '')\n",
        "def f(form):\n    return form['x']\n",
        "def f(form):\n    return form.values.get('x')\n",
        "async def f(request):\n    form = await request.form()\n    return form.getlist('x')\n",
    ],
)
def test_the_check_sees_a_field_read_by_hand(source):
    assert hand_parsing(source) == {"f": [2 if "await" not in source else 3]}


def test_the_check_lets_a_model_read_the_form():
    source = "def f(form):\n    data = form.read()\n    return back_to(form.values, '/')\n"
    assert hand_parsing(source) == {}


# --- how a form becomes a model's input ---------------------------------------------------


def test_only_the_models_fields_are_read_not_the_token_or_other_controls():
    data = form_input(
        StatusIn,
        {"csrf_token": "t", "idem": "k" * 16, "status": "active", "submit": "Save", "x": "1"},
    )
    assert data == {"status": "active"}


def test_repeated_row_fields_become_a_list_of_objects_in_order():
    data = form_input(
        ReviewBody,
        {
            "minutes": "20",
            "summary": "s",
            "recommendations.kind": ["refer", "increase_dose"],
            "recommendations.text": ["CBT group", ""],
        },
    )
    assert data["recommendations"] == [
        {"kind": "refer", "text": "CBT group"},
        {"kind": "increase_dose", "text": ""},
    ]
    one = {"minutes": "5", "summary": "s", "recommendations.kind": "refer"}
    review = read_form(ReviewBody, one | {"recommendations.text": "CBT group"})
    assert [(r.kind, r.text) for r in review.recommendations] == [("refer", "CBT group")]


def test_a_bad_field_is_named_as_the_form_names_it():
    with pytest.raises(InvalidInput) as caught:
        read_form(ReviewBody, {"minutes": "twenty", "summary": "s"})
    assert set(caught.value.errors) == {"minutes"}
    with pytest.raises(InvalidInput) as caught:
        read_form(
            ReviewBody,
            {"minutes": "5", "summary": "s", "recommendations.kind": ["refer", "other"]},
        )
    assert set(caught.value.errors) == {"recommendations.text"}


def test_a_prefixed_form_is_read_without_and_named_with_its_prefix():
    assert (
        read_form(
            FollowUpIn, {"follow_up_note": "Phoned", "note": "not this"}, prefix="follow_up_"
        ).note
        == "Phoned"
    )
    with pytest.raises(InvalidInput) as caught:
        read_form(FollowUpIn, {"note": "the other form's"}, prefix="follow_up_")
    assert set(caught.value.errors) == {"follow_up_note"}


@pytest.mark.parametrize(
    ("back", "expected"),
    [
        ("/tasks?done=1", "/tasks?done=1"),
        ("//evil.example/x", "/fallback"),
        ("https://evil.example/x", "/fallback"),
        ("", "/fallback"),
        (["/a", "/b"], "/fallback"),
    ],
)
def test_back_goes_only_to_a_path_on_this_site(back, expected):
    assert back_to({"back": back}, "/fallback") == expected
