"""`concord smart`: an operator registers, lists and stops SMART apps (issue 21)."""

from __future__ import annotations

from tests.test_cli import cli_db, org_with_a_care_manager, run  # noqa: F401 (the fixture)


def test_register_list_and_stop_an_app(cli_db):  # noqa: F811
    org_with_a_care_manager()
    made = run(
        "smart",
        "register",
        "--admin",
        "a@l.example.org",
        "--name",
        "Mood chart",
        "--scope",
        "launch openid patient/*.rs",
        "--redirect-uri",
        "https://app.example/cb",
        "--confidential",
    )
    assert made.exit_code == 0, made.output
    client_id = made.output.split("client_id: ")[1].split()[0]
    assert "client_secret: " in made.output
    listed = run("smart", "list", "--admin", "a@l.example.org")
    assert listed.exit_code == 0 and "Mood" in listed.output
    assert run("smart", "disable", client_id, "--admin", "a@l.example.org").exit_code == 0
    bad = run(
        "smart",
        "register",
        "--admin",
        "a@l.example.org",
        "--name",
        "X",
        "--scope",
        "everything",
        "--redirect-uri",
        "https://app.example/cb",
    )
    assert bad.exit_code != 0 and "scope" in bad.output
    nobody = run("smart", "list", "--admin", "cm@l.example.org")
    assert nobody.exit_code != 0 and "administrator" in nobody.output


def test_register_a_backend_service_acting_for_a_clinician(cli_db, tmp_path):  # noqa: F811
    import json

    from joserfc.jwk import ECKey

    org_with_a_care_manager()
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps({"keys": [ECKey.generate_key("P-384").as_dict(private=False)]}))
    args = ["smart", "register", "--admin", "a@l.example.org", "--name", "Registry feed"]
    args += ["--scope", "system/*.rs", "--jwks-file", str(keys)]
    made = run(*args, "--acts-for", "cm@l.example.org")
    assert made.exit_code == 0, made.output
    assert "client_id: " in made.output
    # The administrator is no clinician: refused, naming the option's field.
    bad = run(*args, "--acts-for", "a@l.example.org")
    assert bad.exit_code != 0 and "acts_for" in bad.output


def test_change_whom_a_backend_service_acts_for(cli_db, tmp_path):  # noqa: F811
    import json

    from joserfc.jwk import ECKey

    org_with_a_care_manager()
    keys = tmp_path / "jwks.json"
    keys.write_text(json.dumps({"keys": [ECKey.generate_key("P-384").as_dict(private=False)]}))
    args = ["smart", "register", "--admin", "a@l.example.org", "--name", "Registry feed"]
    made = run(*args, "--scope", "system/*.rs", "--jwks-file", str(keys))
    client_id = made.output.split("client_id: ")[1].split()[0]
    change = ["smart", "acts-for", client_id, "--admin", "a@l.example.org"]
    moved = run(*change, "--clinician", "cm@l.example.org")
    assert moved.exit_code == 0, moved.output
    assert "acts for: " in moved.output and "no one" not in moved.output
    bad = run(*change, "--care-team", "not-a-team")
    assert bad.exit_code != 0 and "care_team" in bad.output
    cleared = run(*change)
    assert cleared.exit_code == 0 and "no one" in cleared.output
    assert run("smart", "acts-for", "nope", "--admin", "a@l.example.org").exit_code != 0
