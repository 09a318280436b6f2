"""One typed Settings object, read from CONCORD_* environment variables and validated at start-up.

Every field is documented in docs/operations.md; tests/test_settings.py fails when one is not.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "changethis", "secret", "dev", "demo"}


class Environment(StrEnum):
    development = "development"
    demo = "demo"
    test = "test"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCORD_", extra="ignore")

    env: Environment = Field(
        Environment.production,
        description="development, demo, test or production. Only production insists on a real "
        "secret key and Secure cookies.",
    )
    database_url: str = Field(
        "sqlite:///instance/concord.db",
        description="SQLAlchemy URL. sqlite:///path (embedded default) or "
        "postgresql+psycopg://user@host:5432/db.",
    )
    secret_key: SecretStr = Field(
        SecretStr(""),
        description="Key for encrypting MFA secrets at rest. Required outside demo, development "
        "and test; at least 32 characters.",
    )
    instance_dir: Path = Field(
        Path("instance"),
        description="Folder for the embedded database and the demo's generated secret key.",
    )
    base_url: str = Field(
        "http://127.0.0.1:8000", description="The address people use to reach Concord."
    )
    emergency_access_minutes: int = Field(
        60,
        ge=5,
        le=24 * 60,
        description="How long an emergency access (break the glass) stays open.",
    )
    session_idle_minutes: int = Field(
        15,
        ge=1,
        le=24 * 60,
        description="Sign a user out after this many minutes without activity.",
    )
    session_absolute_hours: int = Field(
        12,
        ge=1,
        le=24 * 30,
        description="Sign a user out this many hours after sign-in, active or not.",
    )
    login_max_failures: int = Field(
        5, ge=1, le=100, description="Failed sign-ins for one account before it is throttled."
    )
    login_lockout_minutes: int = Field(
        15,
        ge=1,
        le=24 * 60,
        description="How long a throttled account must wait, and the window "
        "in which failures are counted.",
    )
    login_max_failures_per_ip: int = Field(
        50,
        ge=1,
        description="Failed sign-ins from one address, within the lockout window, before "
        "that address is throttled.",
    )
    login_account_max_failures: int = Field(
        20,
        ge=1,
        description="Failed sign-ins for one account from every address together, within the "
        "lockout window, before sign-ins to it from addresses it has not signed in from are "
        "slowed down (never stopped from an address it has signed in from).",
    )
    login_account_backoff_seconds: int = Field(
        60,
        ge=1,
        le=60 * 60,
        description="While an account is slowed down, how long an address it has not signed in "
        "from waits after the account's last failed sign-in before it may try again.",
    )
    login_known_address_days: int = Field(
        90,
        ge=1,
        description="An address an account signed in from within this many days is its own: "
        "the account-wide slow-down does not apply there.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or networks (CIDR) of the reverse proxies in "
        "front of Concord. Only a request from one of them may name the client's address in "
        "X-Forwarded-For (and the scheme in X-Forwarded-Proto); from anyone else these headers "
        "are ignored. Empty (the default): no proxy is trusted.",
    )
    cookie_secure: bool | None = Field(
        None,
        description="Send cookies only over HTTPS. Default: on in production, off otherwise.",
    )
    review_interval_days: int = Field(
        28,
        ge=1,
        le=366,
        description="Default days from plan activation to its first review; an "
        "organization can override it.",
    )
    argon2_time_cost: int = Field(3, ge=1, description="argon2id iterations for password hashes.")
    argon2_memory_kib: int = Field(
        65536, ge=1024, description="argon2id memory in KiB for password hashes."
    )
    db_pool_size: int = Field(
        10,
        ge=1,
        description="PostgreSQL connections kept per process (as many again under load); also "
        "how many requests of a process work in the database at once.",
    )
    request_threads: int = Field(
        40,
        ge=2,
        description="Threads per process running request handlers (they wait for the "
        "database); more than the requests admitted to the database at once.",
    )
    db_statement_timeout_ms: int = Field(
        15000,
        ge=0,
        description="PostgreSQL statement timeout; a query past it is answered 503. "
        "0 turns it off.",
    )
    sqlite_synchronous: str = Field(
        "FULL",
        description="SQLite PRAGMA synchronous: FULL (durable against power loss) or NORMAL.",
    )
    default_language: str = Field("en", description="Language for people who have not chosen one.")
    instruments_dir: Path | None = Field(
        None,
        description="A folder of extra instrument files (YAML) a clinic adds, e.g. licensed ones.",
    )
    decision_aids_dir: Path | None = Field(
        None,
        description="A folder of extra decision-aid files (YAML) a clinic adds or edits.",
    )
    smtp_host: str | None = Field(
        None,
        description="Mail server for reminders. Unset: messages are written as .eml files "
        "under the instance folder's mail/ (demo and development).",
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="Mail server port.")
    smtp_username: str | None = Field(None, description="Mail server user, if it needs one.")
    smtp_password: SecretStr | None = Field(None, description="Mail server password.")
    smtp_starttls: bool = Field(True, description="Use STARTTLS with the mail server.")
    smtp_from: str = Field(
        "concord@localhost", description="The From address of messages Concord sends."
    )
    sms_backend: Literal["file", "http", "none"] = Field(
        "file",
        description="How text messages leave: `http` posts to CONCORD_SMS_URL (a generic SMS "
        "gateway), `file` writes them to sms.log under the instance folder (demo and "
        "development), `none` sends none (the next channel is used).",
    )
    sms_url: str | None = Field(
        None,
        description="The SMS gateway's URL; {to} and {text} in it are replaced (URL-encoded). "
        'The request is a POST with a JSON body {"to", "text"}.',
    )
    sms_username: str | None = Field(None, description="SMS gateway user (HTTP basic auth).")
    sms_password: SecretStr | None = Field(None, description="SMS gateway password or API key.")
    freeze_heap: bool | None = Field(
        None,
        description="Load the content libraries at start and move everything loaded so far out "
        "of the garbage collector's way (gc.freeze), so a full collection does not stall a "
        "request. Default: on, except in tests.",
    )
    fhir_validate_output: bool | None = Field(
        None,
        description="Check every FHIR resource Concord sends against the FHIR R4 models before "
        "it leaves (about 1 ms a resource). Default: on, except in production, where the test "
        "suite's checks of every resource kind stand in for it.",
    )
    fhir_mrn_system: str = Field(
        "https://concord-care.org/fhir/sid/mrn/{organization}",
        description="The identifier system of patients' medical record numbers in FHIR "
        "(Patient.identifier.system): the URI your EHR uses for them. `{organization}` is "
        "replaced by the organization's short name.",
    )
    worker_in_process: bool | None = Field(
        None,
        description="Run the background worker (reminders, retries) inside the web process. "
        "Default: on for SQLite, off for PostgreSQL (run `concord worker`).",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="The largest request body accepted, in bytes; a larger one is refused "
        "with 413 while it arrives, before it is all read.",
    )
    audit_anchor_key: Path | None = Field(
        None,
        description="The Ed25519 private key (PEM, made by `concord audit anchor-key`) that "
        "signs audit anchors. Keep it off the database server and out of database backups.",
    )
    audit_anchor_dir: Path | None = Field(
        None,
        description="A folder outside the database where the worker appends a signed anchor of "
        "the audit chain's head (audit-anchors.jsonl). Unset: no scheduled anchors.",
    )
    audit_anchor_every_minutes: int = Field(
        60,
        ge=1,
        le=24 * 60,
        description="How often the worker writes an audit anchor when CONCORD_AUDIT_ANCHOR_DIR "
        "and CONCORD_AUDIT_ANCHOR_KEY are set.",
    )
    bulk_export_dir: Path | None = Field(
        None,
        description="Folder where the worker writes Bulk Data export files (NDJSON). Unset: "
        "the folder `bulk` in CONCORD_INSTANCE_DIR.",
    )
    bulk_export_expires_minutes: int = Field(
        60,
        ge=1,
        le=7 * 24 * 60,
        description="How long a finished Bulk Data export's files can be downloaded before "
        "the worker deletes them.",
    )
    oidc_issuer: str | None = Field(
        None,
        description="The staff sign-in provider's OpenID Connect issuer URL (its discovery "
        "document is ISSUER/.well-known/openid-configuration). Unset: no single sign-on.",
    )
    oidc_client_id: str | None = Field(None, description="Concord's client id at the provider.")
    oidc_client_secret: SecretStr | None = Field(
        None, description="Concord's client secret at the provider (unset for a public client)."
    )
    oidc_match_claim: str = Field(
        "email",
        description="The ID token claim matched (case-insensitively) to a Concord account's "
        "email, e.g. email or preferred_username.",
    )
    oidc_scope: str = Field("openid email profile", description="The scopes asked for.")
    oidc_provider_name: str = Field(
        "your organization's sign-in",
        description="The provider's name on the sign-in button (Sign in with ...).",
    )
    host: str = Field("127.0.0.1", description="Address `concord serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `concord serve` listens on.")

    @field_validator("sqlite_synchronous")
    @classmethod
    def _sync_mode(cls, value: str) -> str:
        value = value.upper()
        if value not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError("must be FULL, NORMAL or EXTRA")
        return value

    @field_validator("fhir_mrn_system")
    @classmethod
    def _mrn_system(cls, value: str) -> str:
        if not re.match(r"^(https?://[^/\s]+|urn:[a-z0-9][a-z0-9-]*:)\S*$", value, re.I):
            raise ValueError("must be an absolute URI (https://... or urn:...)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        import ipaddress

        for item in proxy_list(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"CONCORD_TRUSTED_PROXIES: {item!r} is not an IP address or network "
                    "(e.g. 10.0.0.5 or 10.0.0.0/24)"
                ) from None
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        """Each proxy as an address or a network in its canonical form (10.0.0.0/24)."""
        import ipaddress

        return [
            str(ipaddress.ip_network(item, strict=False)) if "/" in item else item
            for item in proxy_list(self.trusted_proxies)
        ]

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # psycopg 3 is our driver; accept the libpq-style URL people copy from elsewhere.
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        if not (value.startswith("sqlite:") or value.startswith("postgresql+psycopg:")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        key = self.secret_key.get_secret_value()
        if self.env == Environment.production:
            if key.lower() in PLACEHOLDER_SECRETS or len(key) < 32:
                raise ValueError(
                    "CONCORD_SECRET_KEY must be set to a random value of at least 32 characters in "
                    "production (python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
        return self

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.env == Environment.production

    @property
    def validate_fhir_output(self) -> bool:
        if self.fhir_validate_output is not None:
            return self.fhir_validate_output
        return self.env != Environment.production

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def effective_secret_key(self) -> str:
        """The secret key; outside production an unset one is generated once and kept on disk."""
        key = self.secret_key.get_secret_value()
        if key and key.lower() not in PLACEHOLDER_SECRETS:
            return key
        if self.env == Environment.production:  # pragma: no cover - refused by the validator
            raise RuntimeError("no secret key")
        path = self.instance_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48)
        path.write_text(key)
        path.chmod(0o600)
        return key


def proxy_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
