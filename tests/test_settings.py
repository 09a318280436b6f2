"""Settings are typed, checked at start-up, and every one is documented."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from concord.settings import Settings
from tests.conftest import ROOT


def test_every_setting_is_documented():
    operations = (ROOT / "docs" / "operations.md").read_text()
    missing = [
        name for name in Settings.model_fields if f"CONCORD_{name.upper()}" not in operations
    ]
    assert missing == [], f"document these in docs/operations.md: {missing}"


@pytest.mark.parametrize("key", ["", "changeme", "secret", "short"])
def test_production_refuses_a_placeholder_secret(key):
    with pytest.raises(ValidationError) as exc:
        Settings(env="production", secret_key=key)
    assert "CONCORD_SECRET_KEY" in str(exc.value)


def test_production_accepts_a_real_secret_and_secures_cookies():
    settings = Settings(env="production", secret_key="x" * 40)
    assert settings.secure_cookies


def test_fhir_output_is_checked_everywhere_but_production_unless_asked():
    assert Settings(env="test").validate_fhir_output
    assert Settings(env="development").validate_fhir_output
    assert not Settings(env="production", secret_key="x" * 40).validate_fhir_output
    assert Settings(
        env="production", secret_key="x" * 40, fhir_validate_output=True
    ).validate_fhir_output


def test_a_libpq_style_url_is_accepted():
    settings = Settings(env="test", database_url="postgresql://u@h:5432/d")
    assert settings.database_url == "postgresql+psycopg://u@h:5432/d"


def test_an_unsupported_database_is_refused_with_its_name():
    with pytest.raises(ValidationError) as exc:
        Settings(env="test", database_url="mysql://x")
    assert "database_url" in str(exc.value)


def test_outside_production_a_secret_is_generated_once_and_kept(tmp_path):
    settings = Settings(env="demo", instance_dir=tmp_path, secret_key="")
    first = settings.effective_secret_key()
    assert len(first) > 40 and first == settings.effective_secret_key()
    assert oct((tmp_path / "secret_key").stat().st_mode)[-3:] == "600"


def test_trusted_proxies_must_be_addresses_or_networks():
    assert Settings(env="test", trusted_proxies="10.0.0.5, 10.1.0.0/16").trusted_proxy_list == [
        "10.0.0.5",
        "10.1.0.0/16",
    ]
    assert Settings(env="test").trusted_proxy_list == []
    with pytest.raises(ValidationError) as exc:
        Settings(env="test", trusted_proxies="10.0.0.5, *")
    assert "CONCORD_TRUSTED_PROXIES" in str(exc.value)
