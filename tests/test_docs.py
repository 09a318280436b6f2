"""The docs hold: every command README.md and docs/ name runs as written (its subcommands and
options exist), every setting they name exists, and the OpenAPI document describes the error
bodies the API really answers."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from concord.cli import app
from concord.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docs" / "adr").glob("*.md")),
]
COMMAND = re.compile(r"^(?:[A-Z_]+=\S+ )*(concord|\./run|python|make)(?: |$)")


def _commands(path: Path) -> list[str]:
    """Commands in a file's code blocks (one a line) and code spans."""
    text = path.read_text()
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        found += [line.strip() for line in block.splitlines() if COMMAND.match(line.strip())]
    prose = re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " ")
    for span in re.findall(r"`([^`]+)`", prose):
        span = re.sub(r"\s+", " ", span.strip())
        if COMMAND.match(span):
            # "concord serve | demo | migrate": a list of subcommands
            if span.startswith("concord ") and " | " in span:
                found += ["concord " + part.strip() for part in span[8:].split(" | ")]
            else:
                found.append(span)
    return found


# Data files' comments, CLI help and messages, and docstrings name commands too (in backticks).
SOURCES = sorted(
    p
    for pattern in ("concord/**/*.py", "concord/**/*.yaml", "concord/**/*.html", "bench/*.py")
    for p in ROOT.glob(pattern)
)


def _named_in_sources() -> list[tuple[str, str]]:
    found = []
    for path in SOURCES:
        for span in re.findall(r"`((?:concord|\./run|python) [^`\n]+)`", path.read_text()):
            found.append((path.relative_to(ROOT).as_posix(), span))
    return found


def _documented() -> list[tuple[str, str]]:
    in_docs = [(p.relative_to(ROOT).as_posix(), c) for p in DOCS for c in _commands(p)]
    return in_docs + _named_in_sources()


def _words(command: str) -> list[str]:
    command = re.sub(r"<[^>]*>", "X", command)  # <id or first characters>: one placeholder
    command = command.replace("\\|", "|").replace("[", " ").replace("]", " ")
    command = re.sub(r"\$\([^)]*\)", "X", command)  # $(date +%F)
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)  # an environment variable set for the command
    return [w for w in words if w != "..."]


def _check_concord(words: list[str]) -> None:
    # Typer carries its own copy of click: classes are told apart by what they have.
    command = typer.main.get_command(app)
    path: list[str] = []
    while hasattr(command, "get_command") and words and not words[0].startswith("-"):
        sub = command.get_command(command.context_class(command), words[0])
        assert sub is not None, f"no command `concord {' '.join([*path, words[0]])}`"
        path.append(words.pop(0))
        command = sub
    shown = CliRunner().invoke(app, [*path, "--help"])
    assert shown.exit_code == 0, shown.output
    if hasattr(command, "get_command") and not words:
        return
    # The command's own parser: an unknown option, an option without its value, or words the
    # command takes no argument for fail; a placeholder for a value (N, FILE) is fine.
    parser = command.make_parser(command.context_class(command, info_name="concord"))
    try:
        _, extra, _ = parser.parse_args(args=list(words))
    except Exception as error:
        if "UsageError" not in {k.__name__ for k in type(error).__mro__}:
            raise
        message = error.format_message()  # type: ignore[attr-defined]
        raise AssertionError(f"concord {' '.join(path)}: {message}") from None
    assert not extra, f"concord {' '.join(path)} takes no {extra}"


@functools.cache
def _help(target: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """`python TARGET --help`, once per worker for every command the docs name with it (the
    benchmarks are named in several files; each start costs 1-5 s of CPU). pytest's own
    options come from its plugins, not from the suite's conftest, which it need not import."""
    extra = ["--noconftest"] if target == ("-m", "pytest") else []
    return subprocess.run(
        [sys.executable, *target, *extra, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.parametrize(("where", "command"), _documented())
def test_every_documented_command_runs(where, command):
    words = _words(command)
    program = words.pop(0)
    if program == "make":
        assert (ROOT / "Makefile").exists(), f"{where} names `{command}`: there is no Makefile"
    elif program == "concord":
        _check_concord(words)
    elif program == "./run":
        script = (ROOT / "run").read_text()
        assert words and f"\n    {words[0]})" in script, f"./run has no `{words[:1]}`"
        if words[0] == "demo":  # ./run demo passes its options to concord demo
            _check_concord(words)
    else:  # python
        if words[0] == "-c":
            ran = subprocess.run([sys.executable, *words], capture_output=True, timeout=60)
        else:
            target = words[:2] if words[0] == "-m" else words[:1]
            options = [w.split("=")[0] for w in words if w.startswith("--")]
            ran = _help(tuple(target))
            for option in options:
                assert option in ran.stdout, f"{' '.join(target)} has no {option}"
        assert ran.returncode == 0, ran.stderr


def test_the_command_extraction_finds_the_commands():
    """The test above sees the commands (a change of markup would silently drop them)."""
    commands = {c for _, c in _documented()}
    assert "concord audit verify" in commands
    assert "./run demo" in commands
    assert any(c.startswith("python -m bench.profile_pages") for c in commands)
    assert len(commands) > 40


def test_an_unknown_option_or_command_fails_the_check():
    with pytest.raises(AssertionError):
        _check_concord(_words("safety rules load"))
    with pytest.raises(AssertionError):
        _check_concord(_words("safety rules --lod FILE"))
    with pytest.raises(AssertionError):
        _check_concord(_words("no-such-command"))
    _check_concord(_words("safety rules --org SLUG [--load FILE]"))


# Variables the docs name that are not Concord's settings: the test suite's and CI's.
NOT_SETTINGS = {
    "CONCORD_TEST_DATABASE_URL",
    "CONCORD_CI_POSTGRES_URL",
    "CONCORD_BENCH_POSTGRES",
    "CONCORD_ECQM_DIR",  # where tests/ehr/test_official_decks.py finds the eCQM test decks
    "CONCORD_FULL_MATRIX",  # tests/test_part2_matrix.py: the full purpose cross product
    "CONCORD_TEST_NODE_CACHE",  # tests/browser/test_sso.py: where node-oidc-provider is kept
    "CONCORD_BDT_TOKEN",  # scripts/bdt.config.js: the Bulk Data Tester's token
    "CONCORD_BDT_BASE",
    "CONCORD_BDT_GROUP",
    "CONCORD_BDT_CLIENT_ID",  # scripts/bdt.config.js: backend-services authorization
    "CONCORD_BDT_KEY",
    "CONCORD_BDT_SCOPE",
}


def test_every_documented_setting_exists():
    named = {v for p in DOCS for v in re.findall(r"\bCONCORD_[A-Z0-9_]+", p.read_text())}
    settings = {f"CONCORD_{name.upper()}" for name in Settings.model_fields}
    assert named - NOT_SETTINGS <= settings, sorted(named - NOT_SETTINGS - settings)


# --- the OpenAPI document ------------------------------------------------------------------


def test_every_api_route_declares_the_error_bodies_it_answers(client):
    spec = client.get("/api/openapi.json").json()
    api = {p: ops for p, ops in spec["paths"].items() if p.startswith("/api/v1")}
    assert len(api) > 40
    for path, operations in api.items():
        for method, operation in operations.items():
            for status in ("400", "401", "404", "409", "422"):
                response = operation["responses"].get(status)
                assert response, (method, path, status)
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ApiError"}, (method, path)
    error = spec["components"]["schemas"]["ApiError"]
    assert {"error", "detail", "fields"} <= set(error["properties"])
    assert "HTTPValidationError" not in str(spec["paths"])
    # The pages are not part of the API's document; FHIR errors are OperationOutcomes.
    assert not [p for p in spec["paths"] if not p.startswith(("/api/", "/fhir"))]
    fhir = spec["paths"]["/fhir/{kind}"]["get"]["responses"]["422"]["content"]
    assert list(fhir) == ["application/fhir+json"]


def test_the_declared_error_bodies_are_the_real_ones(client, session, people):
    from concord.accounts.tokens import create_api_token
    from concord.web.errors import ApiError
    from tests.conftest import commit

    token, _ = create_api_token(session, user=people.care_manager, by=None)
    commit(session)
    headers = {"Authorization": f"Bearer {token}"}
    missing = client.get("/api/v1/patients/00000000-0000-0000-0000-000000000000", headers=headers)
    assert missing.status_code == 404
    ApiError.model_validate(missing.json())
    bad = client.post(
        f"/api/v1/patients/{people.patient.id}/careplan", headers=headers, json={"title": 5}
    )
    assert bad.status_code == 422
    body = ApiError.model_validate(bad.json())
    assert body.error == "invalid" and body.fields and body.fields[0].field


ADDRESS = re.compile(
    r"(?<![\w.:/])(/(?:api|fhir|safety|registry|decisions|my|patients|admin|healthz|shared|tasks"
    r"|alerts|account|sign-in)(?:/[\w{}.\-]+)*)"
)


def _addresses() -> list[tuple[str, str]]:
    return sorted(
        {(p.relative_to(ROOT).as_posix(), a) for p in DOCS for a in ADDRESS.findall(p.read_text())}
    )


def test_every_documented_address_exists(client):
    """An address the docs name answers something other than 404 (signed out: 401 or a
    redirect to sign-in; a page or route that does not exist is 404)."""
    addresses = _addresses()
    assert ("operations.md", "/healthz") in [(w.split("/")[-1], a) for w, a in addresses]
    missing = []
    for where, address in addresses:
        if address in ("/api", "/api/v1", "/fhir"):
            continue  # the APIs' base addresses, named as such
        path = re.sub(r"\{[^}]*\}", "00000000-0000-0000-0000-000000000000", address)
        path = re.sub(r"decision-(aid-)?0{8}-[0-9-]+", r"decision-\g<1>x", path)
        if client.get(path, follow_redirects=False).status_code == 404:
            missing.append((where, address))
    assert missing == []


PATH_NAMED = re.compile(r"(?<![\w/.-])((?:docs|concord|tests|bench|scripts)/[\w/.<>*{}-]*[\w>*}])")


def test_every_file_the_docs_and_comments_name_exists():
    """A file or folder named in README.md, docs/, or the sources' comments and help (e.g.
    "see docs/risk-rules-format.md") exists; generated ones (bench/data/) excepted."""
    named = {
        (p.relative_to(ROOT).as_posix(), m)
        for p in [*DOCS, *SOURCES]
        for m in PATH_NAMED.findall(p.read_text())
        if not m.startswith("bench/data") and not re.search(r"[<>*{}]", m)  # patterns
    }
    assert len(named) > 50
    missing = [(w, m) for w, m in sorted(named) if not (ROOT / m.rstrip(".")).exists()]
    assert missing == []


def test_every_route_declares_what_it_really_answers(client, session, people):
    """The 413 (body too large) was not declared anywhere, nor the 403 a read-only token or a
    family member's change gets, and POST /fhir/QuestionnaireResponse was declared 200 while
    it answers 201 on create, 200 on a replay and 409 on a conflicting identifier. Each
    status is checked against a real answer of the route."""
    import json as _json

    from concord.accounts.models import TokenScope
    from concord.accounts.tokens import create_api_token
    from concord.web.errors import ApiError
    from tests.conftest import commit
    from tests.fhir.test_fhir_measures import ehr_response

    spec = client.get("/api/openapi.json").json()
    for path, operations in spec["paths"].items():
        if not path.startswith(("/api/v1", "/fhir")):
            continue
        for method, operation in operations.items():
            declared = set(operation["responses"])
            if method in ("post", "put", "patch"):
                assert {"403", "413"} <= declared, (method, path, sorted(declared))
            if path != "/fhir/metadata":  # the one route without the database
                assert "503" in declared, (method, path)

    def declared(method, path):
        return set(spec["paths"][path][method]["responses"])

    token, _ = create_api_token(session, user=people.care_manager, by=None)
    read_only, _ = create_api_token(
        session, user=people.care_manager, by=None, scope=TokenScope.read
    )
    commit(session)
    headers = {"Authorization": f"Bearer {token}"}
    fhir = {**headers, "Content-Type": "application/fhir+json"}
    body = ehr_response(people.patient.id, [0, 1, 0, 1, 0, 1, 0, 0, 0], identifier="docs-1")
    raw = _json.dumps(body)
    qr = "/fhir/QuestionnaireResponse"
    created = client.post(qr, content=raw, headers=fhir)
    replayed = client.post(qr, content=raw, headers=fhir)
    body["item"][0]["answer"] = [{"valueInteger": 3}]
    conflict = client.post(qr, json=body, headers=fhir)
    answers = [created.status_code, replayed.status_code, conflict.status_code]
    assert answers == [201, 200, 409], answers
    assert {"201", "200", "409"} <= declared("post", qr)
    assert spec["paths"][qr]["post"]["responses"]["201"]["description"].startswith("Created")

    big = "x" * (4 * 1024 * 1024 + 10)
    too_large = client.post(qr, content=big, headers=fhir)
    assert too_large.status_code == 413 and "413" in declared("post", qr)
    assert too_large.json()["resourceType"] == "OperationOutcome"
    plan = "/api/v1/patients/{patient_id}/careplan"
    too_large = client.post(
        plan.format(patient_id=people.patient.id),
        content=big,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert too_large.status_code == 413 and "413" in declared("post", plan)
    ApiError.model_validate(too_large.json())
    refused = client.post(
        plan.format(patient_id=people.patient.id),
        json={"title": "Plan"},
        headers={"Authorization": f"Bearer {read_only}"},
    )
    assert refused.status_code == 403 and "403" in declared("post", plan)
    ApiError.model_validate(refused.json())
