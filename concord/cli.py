"""The `concord` command: serve, demo, migrate, worker, tokens, audit, users, organizations,
content, safety rules, backup and restore, synth and bench.

Commands that scripts rely on print only what a script needs (`token create` prints the token
alone) and exit non-zero on failure.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from concord import settings as settings_module
from concord.errors import ConcordError, InvalidInput, NotFound
from concord.settings import Environment, Settings

# Never print local variables with a traceback: they may hold passwords or patient data.
app = typer.Typer(
    help="Concord: collaborative treatment planning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
token_app = typer.Typer(help="API tokens for programs.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
org_app = typer.Typer(help="Organizations and clinics.", no_args_is_help=True)
content_app = typer.Typer(
    help="Clinical content files (instruments, risk rules, decision aids).", no_args_is_help=True
)
safety_app = typer.Typer(help="Safety: the risk rules in force.", no_args_is_help=True)
smart_app = typer.Typer(help="SMART on FHIR apps (docs/smart.md).", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")
app.add_typer(org_app, name="org")
app.add_typer(content_app, name="content")
app.add_typer(safety_app, name="safety")
app.add_typer(smart_app, name="smart")

err = Console(stderr=True)
out = Console()


def operator_settings() -> Settings:
    """Settings for operator commands. They serve no cookies, so when CONCORD_ENV is unset they
    run as development and need no secret key."""
    if "CONCORD_ENV" not in os.environ:
        return Settings(env=Environment.development)
    return Settings()


def _apply(settings: Settings) -> None:
    settings_module.get_settings.cache_clear()
    os.environ["CONCORD_ENV"] = settings.env.value
    os.environ["CONCORD_DATABASE_URL"] = settings.database_url


@contextmanager
def operator_session(settings: Settings, *, migrate: bool = True) -> Iterator[Session]:
    """One unit of work against the configured database, audited as the command line."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.audit.service import set_context
    from concord.db import make_engine, make_sessionmaker, unit_of_work
    from concord.migrate import upgrade

    _apply(settings)
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    if migrate:
        upgrade(engine)
    factory = make_sessionmaker(engine)
    try:
        with unit_of_work(factory) as session:
            set_context(session, channel="cli")
            yield session
    finally:
        engine.dispose()


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.db import make_engine
    from concord.migrate import current_revision, upgrade

    settings = operator_settings()
    _apply(settings)
    engine = make_engine(settings.database_url)
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    engine.dispose()
    out.print(f"Database at revision {after}" + ("" if before == after else f" (was {before})"))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    workers: Annotated[int, typer.Option(help="App processes (PostgreSQL only for >1).")] = 1,
) -> None:
    """Run the web app (migrating the database first)."""

    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.db import make_engine
    from concord.migrate import upgrade

    try:
        settings = Settings()
    except Exception as exc:  # pydantic's message names the setting
        fail(str(exc))
        return
    if workers > 1 and settings.is_sqlite:
        fail("several workers need PostgreSQL; SQLite serves one process")
    _apply(settings)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.server import run

    run(
        "concord.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="info",
    )


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    serve_app: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve after loading.")
    ] = True,
) -> None:
    """Create the demo organization (once), print every demo sign-in, and serve it."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    import uvicorn

    from concord.demo import DEMO_PASSWORD, load_demo

    os.environ.setdefault("CONCORD_ENV", "demo")
    settings = Settings()
    with operator_session(settings) as session:
        summary = load_demo(session)
    # Plain lines, never truncated: a person copies these into the sign-in page.
    typer.echo(f"Demo sign-ins. Every account's password is: {DEMO_PASSWORD}\n")
    width = max(len(row.email) for row in summary.sign_ins)
    for row in summary.sign_ins:
        where = f"  ({row.clinic})" if row.clinic else ""
        typer.echo(f"  {row.email.ljust(width)}  {row.role:<24} {row.name}{where}")
    typer.echo("")
    out.print(
        f"{'Created' if summary.created else 'Found'} the demo organization "
        f"“{summary.organization}” with {summary.patients} synthetic patients."
    )
    out.print("Everything in it is synthetic.")
    if serve_app:
        out.print(f"Concord is at http://{host}:{port} (Ctrl+C to stop)")
        os.environ["CONCORD_BASE_URL"] = os.environ.get("CONCORD_BASE_URL", f"http://{host}:{port}")
        # Loading the demo read (and cached) the settings before the address was set: the app
        # would name http://127.0.0.1:8000 in its links (FHIR Location, fullUrl) on any port.
        settings_module.get_settings.cache_clear()
        uvicorn.run(
            "concord.asgi:app", host=host, port=port, log_level="warning", proxy_headers=False
        )


# --- tokens ----------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    email: Annotated[str | None, typer.Option(help="The user the token acts as.")] = None,
    expires_in: Annotated[str | None, typer.Option(help="e.g. 30d, 12h (default: never).")] = None,
    name: Annotated[str, typer.Option(help="What will use it.")] = "API token",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="read, write or cds (only the CDS Hooks service) for a user (default "
            "write); import and/or quality for a "
            "--client (repeat --scope for several)."
        ),
    ] = None,
    client: Annotated[
        str | None,
        typer.Option(help="An integration client's name (e.g. ehr-feed), instead of --email."),
    ] = None,
    org: Annotated[str | None, typer.Option(help="The client's organization (its slug).")] = None,
    clinic: Annotated[
        str | None, typer.Option(help="The clinic a client's new patients are registered in.")
    ] = None,
) -> None:
    """Print a new bearer token for the user with --email, or for an integration client
    (--client NAME --org SLUG --scope import --scope quality) acting for the organization
    (only the token, for scripts)."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.accounts.models import Clinic, Organization, TokenScope
    from concord.accounts.tokens import create_api_token, create_client_token, parse_duration
    from concord.accounts.users import get_user_by_email

    if (email is None) == (client is None):
        fail("name either --email (a user) or --client (an integration client)")
        return
    try:
        duration = parse_duration(expires_in) if expires_in else None
    except ConcordError as exc:
        fail(f"--expires-in {exc.message.split(': ', 1)[-1]}")
        return
    if client is not None:
        if not org:
            fail("--org is required with --client")
            return
        with operator_session(operator_settings()) as session:
            organization = session.scalar(select(Organization).where(Organization.slug == org))
            if organization is None:
                fail(f"no organization {org!r}")
                return
            clinic_row = None
            if clinic:
                clinic_row = session.scalar(
                    select(Clinic).where(
                        Clinic.organization_id == organization.id, Clinic.name == clinic
                    )
                )
                if clinic_row is None:
                    fail(f"no clinic {clinic!r} in {org!r}")
                    return
            try:
                token, _ = create_client_token(
                    session,
                    organization=organization,
                    name=client,
                    scopes=list(scope or []),
                    clinic=clinic_row,
                    expires_in=duration,
                )
            except InvalidInput as exc:
                fail("; ".join(f"--{k} {v}" for k, v in exc.errors.items()) or exc.message)
                return
        typer.echo(token)
        return
    scopes = list(scope or ["write"])
    try:
        if len(scopes) != 1:
            raise ValueError
        token_scope = TokenScope(scopes[0])
    except ValueError:
        fail("--scope must be read, write or cds")
        return
    with operator_session(operator_settings()) as session:
        user = get_user_by_email(session, str(email))
        if user is None or not user.active:
            fail(f"no active user with email {email}")
            return
        token, _ = create_api_token(
            session, user=user, by=None, name=name, expires_in=duration, scope=token_scope
        )
    typer.echo(token)


@token_app.command("list")
def token_list(email: Annotated[str, typer.Option(help="Whose tokens.")]) -> None:
    """List a user's tokens (never the tokens themselves)."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.accounts.tokens import list_api_tokens
    from concord.accounts.users import get_user_by_email

    with operator_session(operator_settings()) as session:
        user = get_user_by_email(session, email)
        if user is None:
            fail(f"no user with email {email}")
            return
        table = Table()
        for column in ("Id", "Starts with", "Name", "Scope", "Expires", "Revoked"):
            table.add_column(column)
        for t in list_api_tokens(session, user=user):
            table.add_row(
                str(t.id),
                t.prefix,
                t.name,
                t.scope,
                t.expires_at.isoformat() if t.expires_at else "never",
                t.revoked_at.isoformat() if t.revoked_at else "",
            )
        out.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="Id or starting characters.")],
) -> None:
    """Revoke a token so it stops working at once."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.accounts.tokens import revoke_api_token

    with operator_session(operator_settings()) as session:
        try:
            revoke_api_token(session, token_id=token_id, by=None)
        except NotFound:
            fail("no such token")
    out.print("revoked")


# --- SMART apps ------------------------------------------------------------------------------


def _smart_admin(session: Any, email: str) -> Any:
    # local import: a command loads only what it runs (see token_create)
    from concord.accounts.users import get_user_by_email

    user = get_user_by_email(session, email)
    if user is None or not user.active or not user.can_administer:
        fail(f"no active administrator with email {email}")
    return user


@smart_app.command("register")
def smart_register(
    admin: Annotated[str, typer.Option(help="The administrator registering it (email).")],
    name: Annotated[str, typer.Option(help="The app's name, as people see it.")],
    scope: Annotated[
        str, typer.Option(help="The scopes it may ask for, e.g. 'launch openid patient/*.rs'.")
    ],
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="Where people are sent back (repeat for several).")
    ] = None,
    launch_url: Annotated[str | None, typer.Option(help="Its EHR launch URL.")] = None,
    confidential: Annotated[
        bool, typer.Option(help="It runs on a server that keeps a secret.")
    ] = False,
    jwks_file: Annotated[
        Path | None, typer.Option(help="A file with its public keys (JWKS, JSON).")
    ] = None,
    jwks_url: Annotated[str | None, typer.Option(help="Or the https URL of its keys.")] = None,
    origin: Annotated[
        list[str] | None,
        typer.Option(help="A browser or EHR origin (CORS, frame-ancestors; repeat for several)."),
    ] = None,
    acts_for: Annotated[
        str | None,
        typer.Option(
            help="A backend service: the clinician (email) whose access its exports borrow."
        ),
    ] = None,
) -> None:
    """Register an app; prints its client_id (and, for a confidential app without keys, its
    client secret, shown only now)."""
    # local import: a command loads only what it runs (see token_create)
    import json

    from concord.smart.service import register_client

    try:
        jwks = json.loads(jwks_file.read_text()) if jwks_file else None
    except (OSError, ValueError) as exc:
        fail(f"--jwks-file cannot be read as JSON: {exc}")
    with operator_session(operator_settings()) as session:
        by = _smart_admin(session, admin)
        try:
            client, secret = register_client(
                session,
                by=by,
                name=name,
                redirect_uris=list(redirect_uri or []),
                scopes=scope,
                confidential=confidential,
                launch_url=launch_url,
                jwks=jwks,
                jwks_url=jwks_url,
                origins=list(origin or []),
                acts_for=acts_for,
            )
        except InvalidInput as exc:
            fail("; ".join(f"{k}: {v}" for k, v in exc.errors.items()) or exc.message)
        typer.echo(f"client_id: {client.client_id}")
        if secret:
            typer.echo(f"client_secret: {secret}")


@smart_app.command("list")
def smart_list(admin: Annotated[str, typer.Option(help="An administrator (email).")]) -> None:
    """The organization's registered apps."""
    # local import: a command loads only what it runs (see token_create)
    from concord.smart.service import list_clients

    with operator_session(operator_settings()) as session:
        table = Table()
        for column in ("Id", "client_id", "Name", "Scopes", "Stopped"):
            table.add_column(column)
        for c in list_clients(session, by=_smart_admin(session, admin)):
            table.add_row(
                str(c.id),
                c.client_id,
                c.name,
                c.allowed_scopes,
                c.disabled_at.isoformat() if c.disabled_at else "",
            )
        out.print(table)


@smart_app.command("disable")
def smart_disable(
    app_id: Annotated[str, typer.Argument(help="The app's id or client_id.")],
    admin: Annotated[str, typer.Option(help="An administrator (email).")],
) -> None:
    """Stop an app: its grants and tokens are revoked at once."""
    # local import: a command loads only what it runs (see token_create)
    from concord.smart.service import disable_client

    with operator_session(operator_settings()) as session:
        try:
            disable_client(session, by=_smart_admin(session, admin), ident=app_id)
        except NotFound:
            fail("no such app")
    out.print("stopped")


@smart_app.command("acts-for")
def smart_acts_for(
    app_id: Annotated[str, typer.Argument(help="The backend service's id or client_id.")],
    admin: Annotated[str, typer.Option(help="An administrator (email).")],
    clinician: Annotated[
        str | None, typer.Option(help="The clinician (email) whose access it borrows.")
    ] = None,
    care_team: Annotated[
        str | None, typer.Option(help="Or a care team's id: it acts for the team's lead now.")
    ] = None,
) -> None:
    """Change whom a backend service acts for (audited); neither option: no one (it then reads
    nothing). A running export of the app stops at its next batch."""
    # local import: a command loads only what it runs (see token_create)
    from concord.smart.service import change_acts_for

    with operator_session(operator_settings()) as session:
        try:
            client = change_acts_for(
                session,
                by=_smart_admin(session, admin),
                ident=app_id,
                acts_for=clinician,
                care_team=care_team,
            )
        except NotFound:
            fail("no such app")
        except InvalidInput as exc:
            fail("; ".join(f"{k}: {v}" for k, v in exc.errors.items()) or exc.message)
        out.print(f"acts for: {client.acts_for_id or 'no one'}")


# --- audit -----------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    anchors: Annotated[
        Path | None,
        typer.Option(
            help="A folder of anchors (`concord audit anchor`): also check the trail still "
            "holds each anchored event, which shows a shortened or rewritten trail."
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            help="The anchors' public key (the .pub beside the key). Default: derived from "
            "CONCORD_AUDIT_ANCHOR_KEY."
        ),
    ] = None,
) -> None:
    """Check the audit trail's hash chain from the first event; name the first broken one."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.audit.anchor import AnchorError, load_public_key, verify_anchors
    from concord.audit.service import verify

    settings = operator_settings()
    key = None
    if anchors is not None:
        key_path = public_key or settings.audit_anchor_key
        if key_path is None:
            fail("give --public-key (or set CONCORD_AUDIT_ANCHOR_KEY) to check the anchors")
        try:
            key = load_public_key(key_path)
        except AnchorError as exc:
            fail(str(exc))
    with operator_session(settings, migrate=False) as session:
        result = verify(session)
        checked = None
        if anchors is not None and key is not None:
            try:
                checked = verify_anchors(session, directory=anchors, public_key=key)
            except AnchorError as exc:
                fail(str(exc))
    broken = False
    if result.ok:
        typer.echo(f"audit chain intact: {result.events} events")
    else:
        typer.echo(
            f"audit chain BROKEN at event {result.first_broken_seq}: {result.problem} "
            f"({result.events} events verified before it)",
            err=True,
        )
        broken = True
    if checked is not None:
        for problem in checked.problems:
            typer.echo(f"audit anchor FAILED: {problem}", err=True)
        if checked.ok:
            typer.echo(
                f"anchors hold ({checked.anchors} checked): events 1-{checked.last_sequence} "
                f"are as anchored; {max(result.events - checked.last_sequence, 0)} later "
                "events are covered by no anchor yet"
            )
        else:
            broken = True
    if broken:
        raise typer.Exit(1)


@audit_app.command("anchor-key")
def audit_anchor_key(
    out: Annotated[Path, typer.Option(help="Where to write the new private key (PEM).")],
) -> None:
    """Make the Ed25519 key that signs audit anchors: the private key at OUT (owner-only),
    the public key at OUT.pub. Keep the private key off the database server's backups."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.audit.anchor import AnchorError, create_key

    try:
        public = create_key(out)
    except AnchorError as exc:
        fail(str(exc))
    typer.echo(f"anchor key written to {out}; its public key to {public}")


@audit_app.command("anchor")
def audit_anchor(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Folder to append to. Default: CONCORD_AUDIT_ANCHOR_DIR."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(help="The signing key. Default: CONCORD_AUDIT_ANCHOR_KEY."),
    ] = None,
) -> None:
    """Sign the audit chain's head (sequence and hash) and append it to DIR/audit-anchors.jsonl;
    the line is printed too (pipe it to `logger` to keep a copy in syslog)."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.audit.anchor import AnchorError, load_private_key, write_anchor

    settings = operator_settings()
    directory = directory or settings.audit_anchor_dir
    key = key or settings.audit_anchor_key
    if directory is None:
        fail("give --dir (or set CONCORD_AUDIT_ANCHOR_DIR)")
    if key is None:
        fail("give --key (or set CONCORD_AUDIT_ANCHOR_KEY); make one with concord audit anchor-key")
    try:
        signing = load_private_key(key)
        with operator_session(settings, migrate=False) as session:
            anchor = write_anchor(session, key=signing, directory=directory)
    except (AnchorError, OSError) as exc:
        fail(str(exc))
    typer.echo(anchor.line())


# --- users and organizations ---------------------------------------------------------------------


@org_app.command("create")
def org_create(
    name: Annotated[str, typer.Option(help="The organization's name.")],
    slug: Annotated[str, typer.Option(help="A short id, e.g. riverside.")],
    clinic: Annotated[list[str], typer.Option(help="A clinic's name (repeat for more).")],
    admin_email: Annotated[str, typer.Option(help="The first administrator's email.")],
    admin_name: Annotated[str, typer.Option(help="The first administrator's name.")],
    timezone: Annotated[str, typer.Option(help="IANA zone, e.g. America/Chicago.")] = "UTC",
) -> None:
    """Create an organization, its clinics and its first administrator (prints a temporary
    password)."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from concord.accounts.models import Role
    from concord.accounts.organizations import create_clinic, create_organization
    from concord.accounts.users import create_user

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        fail(f"--timezone {timezone!r} is not an IANA time zone such as America/Chicago")
    with operator_session(operator_settings()) as session:
        try:
            org = create_organization(session, name=name, slug=slug, timezone=timezone)
            for clinic_name in clinic:
                create_clinic(session, organization=org, name=clinic_name)
            _, password = create_user(
                session,
                by=None,
                organization=org,
                email=admin_email,
                name=admin_name,
                role=Role.admin,
            )
        except ConcordError as exc:
            fail(exc.message)
            return
    typer.echo(f"Created {name}. Administrator {admin_email}, temporary password: {password}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option(help="e.g. care_manager, psychiatrist, admin.")],
    org: Annotated[str, typer.Option(help="The organization's slug.")],
    clinic: Annotated[str | None, typer.Option(help="The clinic's name.")] = None,
    admin: Annotated[bool, typer.Option(help="Also an administrator.")] = False,
) -> None:
    """Create a staff account (prints a temporary password)."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.accounts.models import Clinic, Organization, Role
    from concord.accounts.users import create_user

    try:
        role_value = Role(role)
    except ValueError:
        fail("--role must be one of: " + ", ".join(r.value for r in Role))
        return
    with operator_session(operator_settings()) as session:
        organization = session.scalar(select(Organization).where(Organization.slug == org))
        if organization is None:
            fail(f"no organization {org!r}")
            return
        clinic_row = None
        if clinic:
            clinic_row = session.scalar(
                select(Clinic).where(
                    Clinic.organization_id == organization.id, Clinic.name == clinic
                )
            )
            if clinic_row is None:
                fail(f"no clinic {clinic!r} in {org}")
        try:
            _, password = create_user(
                session,
                by=None,
                organization=organization,
                email=email,
                name=name,
                role=role_value,
                clinic=clinic_row,
                is_admin=admin,
            )
        except ConcordError as exc:
            problems = "; ".join(f"{k} {v}" for k, v in getattr(exc, "errors", {}).items())
            fail(problems or exc.message)
            return
    typer.echo(f"Created {email}. Temporary password: {password}")


@users_app.command("reset-password")
def users_reset_password(email: Annotated[str, typer.Option()]) -> None:
    """Give a user a new temporary password (and sign them out everywhere)."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.accounts.passwords import reset_password
    from concord.accounts.users import get_user_by_email

    with operator_session(operator_settings()) as session:
        user = get_user_by_email(session, email)
        if user is None:
            fail(f"no user with email {email}")
            return
        password = reset_password(session, user=user, by=None)
    typer.echo(f"Temporary password for {email}: {password}")


def _kind_of(path: Any) -> str | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def _is_risk_rules(path: Any) -> bool:
    return _kind_of(path) == "risk-rules"


@content_app.command("check")
def content_check(
    files: Annotated[
        list[str] | None, typer.Argument(help="Files to check (default: all loaded content).")
    ] = None,
) -> None:
    """Validate content files (instruments, risk rules, decision aids) and list what is
    loaded, one line each: kind, code, version, languages, licence. Exits 1 on any problem."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from pathlib import Path

    from concord.measures.library import BUILT_IN, InstrumentError, files_in, load_library
    from concord.safety.rules import DEFAULT_FILE, RuleFileError, parse_rules

    settings = operator_settings()
    _apply(settings)
    paths = (
        [Path(f) for f in files]
        if files
        else files_in([BUILT_IN] + ([settings.instruments_dir] if settings.instruments_dir else []))
        + [DEFAULT_FILE]
    )
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.decisions import aids as decision_aids

    if not files:
        paths += decision_aids.files_in(
            [decision_aids.BUILT_IN]
            + ([settings.decision_aids_dir] if settings.decision_aids_dir else [])
        )
    rule_paths = [p for p in paths if _is_risk_rules(p)]
    aid_paths = [p for p in paths if _kind_of(p) == "decision_aid"]
    problems = 0
    loaded = []
    aid_ids: dict[str, Any] = {}
    for path in aid_paths:
        try:
            aid = decision_aids.load_file(path)
        except decision_aids.AidError as exc:
            problems += 1
            typer.echo(f"ERROR {exc.path}: {exc.problem}", err=True)
            continue
        aid_ids[aid.id] = aid  # a clinic's copy (read later) replaces the built-in one
    for path in paths:
        if path in rule_paths or path in aid_paths:
            continue
        try:
            loaded.extend(load_library([path]).all())
        except InstrumentError as exc:
            problems += 1
            typer.echo(f"ERROR {exc.path}: {exc.problem}", err=True)
    codes = [i.code for i in loaded]
    for code in sorted({c for c in codes if codes.count(c) > 1}):
        problems += 1
        typer.echo(f"ERROR code {code} is used by more than one file", err=True)
    for instrument in sorted(loaded, key=lambda i: i.code):
        licence = instrument.licence.get("holder", "?")
        shipped = "" if instrument.licence.get("ships_text", True) else " (licensed by clinic)"
        typer.echo(
            f"instrument  {instrument.code:<14} v{instrument.version:<8} "
            f"{','.join(instrument.languages):<6} {licence}{shipped}"
        )
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.measures.library import library

    for path in rule_paths:
        try:
            rules = parse_rules(path.read_text(encoding="utf-8"), name=str(path), library=library())
        except RuleFileError as exc:
            problems += 1
            where = exc.where if exc.where.startswith(str(path)) else f"{path}: {exc.where}"
            typer.echo(f"ERROR {where}: {exc.problem}", err=True)
            continue
        languages = sorted({lang for r in rules.rules for lang in r.name} | {"en"})
        typer.echo(
            f"risk-rules  {rules.code:<14} v{rules.version:<8} {','.join(languages):<6} "
            f"{len(rules.rules)} rules, {len(rules.tiers)} tiers"
        )
    for aid in sorted(aid_ids.values(), key=lambda a: a.id):
        typer.echo(
            f"aid         {aid.id:<24} v{aid.version:<4} en,es   {len(aid.options)} options, "
            f"{len(aid.values)} values, {len(aid.sources)} sources, reviewed "
            f"{aid.last_reviewed.isoformat()}"
        )
    if problems:
        raise typer.Exit(1)


@safety_app.command("rules")
def safety_rules(
    org: Annotated[str, typer.Option(help="The organization's short name (slug).")],
    load: Annotated[
        str | None, typer.Option(help="A risk-rules file to check and put in force.")
    ] = None,
) -> None:
    """Show the risk rules in force for an organization, or load new ones (--load FILE). A
    file that fails its checks is refused and the rules in force stay."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from pathlib import Path

    from sqlalchemy import select

    from concord.accounts.models import Organization
    from concord.safety.rules import format_duration
    from concord.safety.rulesets import load_rules, rules_for

    settings = operator_settings()
    with operator_session(settings) as session:
        organization = session.scalar(select(Organization).where(Organization.slug == org))
        if organization is None:
            fail(f"no organization called {org}")
        assert organization is not None
        if load:
            try:
                text = Path(load).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                fail(f"cannot read {load}: {exc}")
            try:
                row = load_rules(session, by=None, organization=organization, text=text)
            except InvalidInput as exc:
                fail(f"{load}: {exc.errors.get('rules', exc.message)} (the rules in force stay)")
            out.print(f"Loaded {row.code} {row.version} as rule set {row.number} for {org}.")
        rules = rules_for(session, organization.id)
        typer.echo(f"{rules.name} ({rules.code} {rules.version})")
        for tier in rules.tiers:
            within = format_duration(tier.acknowledge_within)
            typer.echo(f"  tier {tier.code:<10} acknowledge within {within}")
        for name, steps in rules.chains.items():
            typer.echo(f"  chain {name}: {' -> '.join(steps)}")
        for rule in rules.rules:
            typer.echo(f"  rule {rule.id:<34} {rule.tier:<9} chain {rule.chain}")


@app.command()
def worker(
    interval: Annotated[float, typer.Option(help="Seconds between passes.")] = 30.0,
    once: Annotated[bool, typer.Option(help="Run one pass and exit.")] = False,
) -> None:
    """Run the background jobs: escalating safety alerts, missed follow-ups, check-in
    reminders, the registry's tasks and sending the outbox."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    import signal
    import time

    from concord.db import make_engine, make_sessionmaker
    from concord.fhir.bulk import BulkSchedule
    from concord.outbox import mailer_from_settings
    from concord.worker import AnchorSchedule, Worker, run_once

    settings = operator_settings()
    _apply(settings)
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    factory = make_sessionmaker(engine)
    anchor = AnchorSchedule.from_settings(settings)
    bulk = BulkSchedule.from_settings(settings)
    if once:
        done = run_once(factory, mailer_from_settings(), settings.base_url, anchor, bulk=bulk)
        typer.echo(", ".join(f"{k}: {v}" for k, v in done.items()))
        engine.dispose()
        return
    running = Worker(
        factory,
        mailer_from_settings(),
        settings.base_url,
        interval=interval,
        anchor=anchor,
        bulk=bulk,
    )
    running.start()
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"]:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    running.stop()
    engine.dispose()


# --- backup and restore (SQLite; PostgreSQL uses pg_dump and pg_restore) ----------------------


def _refused(exc: Exception) -> NoReturn:
    # Plain lines, never wrapped: the message may hold a command to copy.
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


@app.command()
def backup(
    file: Annotated[str, typer.Argument(help="Where to write the copy.")],
    force: Annotated[bool, typer.Option(help="Replace FILE if it exists.")] = False,
) -> None:
    """Copy the SQLite database to FILE, consistently, while Concord runs."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from pathlib import Path

    from concord.backup import BackupError, backup_sqlite, sqlite_path

    settings = operator_settings()
    try:
        database = sqlite_path(settings.database_url)
        copied = backup_sqlite(database, Path(file), force=force)
    except BackupError as exc:
        _refused(exc)
    typer.echo(f"Backed up {database} to {file}: {copied.summary()}.")
    typer.echo("Keep CONCORD_SECRET_KEY with it, separately secured: two-step sign-in needs it.")


@app.command()
def restore(
    file: Annotated[str, typer.Argument(help="A backup made by `concord backup`.")],
    force: Annotated[bool, typer.Option(help="Replace a database that holds data.")] = False,
) -> None:
    """Replace the SQLite database with the backup FILE (stop Concord first), then check the
    audit trail."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from pathlib import Path

    from concord.audit.service import verify
    from concord.backup import BackupError, restore_sqlite, sqlite_path

    settings = operator_settings()
    try:
        database = sqlite_path(settings.database_url)
        restored, older = restore_sqlite(Path(file), database, force=force)
    except BackupError as exc:
        _refused(exc)
    typer.echo(f"Restored {file} into {database}: {restored.summary()}.")
    if older:
        typer.echo("The backup's schema is older than this Concord: run `concord migrate`.")
    with operator_session(settings, migrate=False) as session:
        result = verify(session)
    if not result.ok:
        typer.echo(
            f"audit chain BROKEN at event {result.first_broken_seq}: {result.problem}", err=True
        )
        raise typer.Exit(1)
    typer.echo(f"audit chain intact: {result.events} events")


@app.command()
def synth(
    patients: Annotated[int, typer.Option(help="How many patients.")] = 1000,
    seed: Annotated[int, typer.Option(help="The same seed (and day) gives the same rows.")] = 1,
    measurements: Annotated[
        int | None, typer.Option(help="About how many scores in all (default 20 a patient).")
    ] = None,
) -> None:
    """Build a synthetic population in the configured database (migrating it first):
    an organization with care teams, plans, episodes, contacts, scores, alerts and case
    reviews. Only invented data. Does nothing if the population is already there."""
    # local import: a command loads only what it runs: `import concord.cli` takes 0.6 s of CPU,
    # 1.5 s with every command's modules (measured, issue 17)
    from concord.synth import PASSWORD, build, existing

    settings = operator_settings()
    if existing(settings.database_url) is not None:
        typer.echo("The synthetic population is already in this database; nothing to do.")
        return
    population = build(
        settings.database_url, patients=patients, seed=seed, measurements=measurements
    )
    rate = population.rows / population.seconds if population.seconds else 0
    typer.echo(
        f"Built {population.patients:,} patients and {population.measurements:,} scores "
        f"({population.rows:,} rows in {population.seconds:.1f} s, {rate:,.0f} rows/s)."
    )
    typer.echo(
        f"Sign in as {population.care_manager_email} (password {PASSWORD}) to see a caseload."
    )


@app.command()
def bench(
    db: Annotated[str, typer.Option(help="sqlite or postgresql")] = "sqlite",
    patients: Annotated[int, typer.Option(help="Population size for the cases.")] = 100_000,
    runs: Annotated[int, typer.Option(help="Timed runs per in-process case.")] = 30,
    http_seconds: Annotated[float, typer.Option(help="Seconds per HTTP load run.")] = 10.0,
    scaling: Annotated[
        str, typer.Option(help="Population sizes for the scaling curve, e.g. 1000,10000,100000.")
    ] = "",
    write: Annotated[bool, typer.Option(help="Write docs/performance.md.")] = True,
) -> None:
    """Run the benchmark suite (code in bench/, so from a source checkout): each case beside
    its baseline in the same run, printed and written to docs/performance.md."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "suite.py").exists():
        fail("the benchmarks live in bench/ of a source checkout; run this from one")
        return
    if db not in ("sqlite", "postgresql"):
        fail("--db must be sqlite or postgresql")
        return
    # The suite builds and serves databases of its own and needs none of a deployment's
    # settings (the servers it starts run in production mode with a key of their own).
    os.environ.setdefault("CONCORD_ENV", "development")
    settings_module.get_settings.cache_clear()
    sys.path.insert(0, str(root))
    from bench.suite import run

    sizes = [int(x) for x in scaling.split(",") if x.strip()]
    run(db, patients, runs=runs, http_seconds=http_seconds, scaling=sizes or None, write=write)


def main() -> None:  # pragma: no cover
    app(prog_name="concord")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
