"""The risk rules: the file is checked (and refused with a clear message), and every default
rule fires on its trigger and not just below it. Sources for each threshold are in
concord/safety/risk-rules.yaml and docs/clinical-sources.md ("Risk rules")."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select

from concord.errors import InvalidInput
from concord.measures.library import library
from concord.safety.alerts import raise_manual_flag
from concord.safety.models import RiskRuleSet, SafetyAlert
from concord.safety.rules import (
    DEFAULT_FILE,
    RuleFileError,
    default_rules,
    parse_rules,
)
from concord.safety.rulesets import load_rules, rules_for
from tests.conftest import commit
from tests.safety.conftest import asq, audit_c, pcl5_total, phq9, phq9_total, respond

DEFAULT = DEFAULT_FILE.read_text(encoding="utf-8")


def alerts(session):
    return session.scalars(select(SafetyAlert).order_by(SafetyAlert.created_at)).all()


# --- each default rule, at and just below its trigger -------------------------------------------


class TestTheDefaultRules:
    """Sources: NIMH ASQ pathway and adult BSSA guide (ASQ); Simon 2013 / Louzon 2016 and
    Concord's same-day rule (PHQ-9 item 9); Löwe 2004 (PHQ-9 5-point change); Blanchard 2023
    (PCL-5 10 points); VA QUERI FAQ (AUDIT-C 8 or more)."""

    def test_they_load_and_cover_every_critical_answer_in_the_library(self):
        rules = parse_rules(DEFAULT, library=library())
        assert [t.code for t in rules.tiers] == ["acute", "urgent", "high", "moderate"]
        assert {r.id for r in rules.rules} >= {
            "asq-acute-positive",
            "asq-positive",
            "phq9-item9-any",
            "phq9-item9-half-the-days-or-more",
            "phq9-sharp-rise",
            "pcl5-sharp-rise",
            "auditc-high",
            "manual-flag",
            "missed-follow-up",
        }

    @pytest.mark.parametrize(
        ("item9", "tier", "rule"),
        [
            (0, None, None),
            (1, "high", "phq9-item9-any"),
            (2, "urgent", "phq9-item9-half-the-days-or-more"),
            (3, "urgent", "phq9-item9-half-the-days-or-more"),
        ],
    )
    def test_phq9_item_9_by_answer(self, session, people, plan, item9, tier, rule):
        completed = respond(session, people, "PHQ-9", phq9([1, 1, 1, 1, 1, 1, 1, 1, item9]))
        if tier is None:
            assert completed.alert is None and alerts(session) == []
        else:
            assert (completed.alert.tier, completed.alert.rule_id) == (tier, rule)
            fired = [t["rule"] for t in completed.alert.triggers]
            # Every rule that fired is listed, most serious first.
            assert fired[0] == rule and "phq9-item9-any" in fired
            item = completed.alert.triggers[0]["items"][0]
            assert item["item"] == "9" and item["value"] == item9
            assert "better off dead" in item["question"]["en"]

    def test_asq_acute_positive_is_acute(self, session, people, plan):
        completed = respond(session, people, "ASQ", asq(1, 5))
        assert (completed.alert.tier, completed.alert.rule_id) == ("acute", "asq-acute-positive")
        assert completed.alert.chain[:2] == ["care_manager", "on_call"]

    def test_asq_positive_without_the_acute_answer_is_urgent(self, session, people, plan):
        completed = respond(session, people, "ASQ", asq(3))
        assert (completed.alert.tier, completed.alert.rule_id) == ("urgent", "asq-positive")

    def test_asq_declined_is_a_positive_screen(self, session, people, plan):
        completed = respond(session, people, "ASQ", asq(declined=(2,)), declined=("2",))
        assert completed.alert.rule_id == "asq-positive"

    def test_asq_all_no_raises_nothing(self, session, people, plan):
        assert respond(session, people, "ASQ", asq()).alert is None

    @pytest.mark.parametrize(("second", "fires"), [(13, False), (14, True), (20, True)])
    def test_phq9_rise_of_five_points(self, session, people, plan, clock, second, fires):
        respond(session, people, "PHQ-9", phq9_total(9))
        clock.advance(days=14)
        completed = respond(session, people, "PHQ-9", phq9_total(second))
        if fires:
            assert (completed.alert.tier, completed.alert.rule_id) == (
                "moderate",
                "phq9-sharp-rise",
            )
            assert completed.alert.triggers[0]["previous"] == 9
            assert completed.alert.triggers[0]["value"] == second
        else:
            assert completed.alert is None

    def test_a_first_phq9_has_nothing_to_rise_from(self, session, people, plan):
        assert respond(session, people, "PHQ-9", phq9_total(20)).alert is None

    def test_a_fall_is_not_a_rise(self, session, people, plan, clock):
        respond(session, people, "PHQ-9", phq9_total(20))
        clock.advance(days=14)
        assert respond(session, people, "PHQ-9", phq9_total(5)).alert is None

    @pytest.mark.parametrize(("second", "fires"), [(39, False), (40, True)])
    def test_pcl5_rise_of_ten_points(self, session, people, plan, clock, second, fires):
        respond(session, people, "PCL-5", pcl5_total(30))
        clock.advance(days=28)
        completed = respond(session, people, "PCL-5", pcl5_total(second))
        assert (completed.alert is not None) == fires
        if fires:
            assert completed.alert.rule_id == "pcl5-sharp-rise"

    @pytest.mark.parametrize(
        ("answers", "fires"),
        [(audit_c(4, 3, 0), False), (audit_c(4, 3, 1), True), (audit_c(4, 4, 4), True)],
    )
    def test_audit_c_high_range(self, session, people, plan, answers, fires):
        completed = respond(session, people, "AUDIT-C", answers)
        assert (completed.alert is not None) == fires
        if fires:
            assert (completed.alert.tier, completed.alert.rule_id) == ("moderate", "auditc-high")

    def test_a_manual_flag_takes_the_tier_the_clinician_chose(self, session, people, plan):
        from tests.factories import acc_for

        alert = raise_manual_flag(
            session,
            access=acc_for(session, people.therapist, people.patient),
            tier="urgent",
            reason="Said goodbye to everyone at group today.",
        )
        assert (alert.tier, alert.rule_id, alert.source_kind) == ("urgent", "manual-flag", "manual")
        assert alert.reason == "Said goodbye to everyone at group today."

    def test_a_manual_flag_needs_a_known_tier_and_a_reason(self, session, people, plan):
        from tests.factories import acc_for

        with pytest.raises(InvalidInput) as caught:
            raise_manual_flag(
                session,
                access=acc_for(session, people.therapist, people.patient),
                tier="severe",
                reason=" ",
            )
        assert set(caught.value.errors) == {"tier", "reason"}
        assert "acute, urgent, high, moderate" in caught.value.errors["tier"]
        assert alerts(session) == []


# --- a rule file that cannot be used ------------------------------------------------------------


def broken(change) -> str:
    data = yaml.safe_load(DEFAULT)
    change(data)
    return yaml.safe_dump(data, allow_unicode=True)


def rule(data, rule_id):
    return next(r for r in data["rules"] if r["id"] == rule_id)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: rule(d, "asq-positive").pop("chain"), "rule asq-positive: has no owner"),
        (lambda d: d["chains"].update(standard=[]), "chain standard: has no owner"),
        (
            lambda d: d["chains"]["standard"].append("janitor"),
            "chain standard: step janitor is not one of",
        ),
        (lambda d: rule(d, "asq-positive").update(chain="night"), "chain night is not defined"),
        (lambda d: rule(d, "asq-positive").update(tier="severe"), "tier severe is not one of"),
        (
            lambda d: d["rules"].remove(rule(d, "asq-acute-positive")),
            "ASQ's critical flag acute-positive has no rule",
        ),
        (
            lambda d: d["rules"].remove(rule(d, "missed-follow-up")),
            "needs a rule for the event missed-follow-up",
        ),
        (
            lambda d: d["tiers"][0].update(acknowledge_within="soon"),
            "tier acute acknowledge_within: must be a time such as 15m",
        ),
        (
            lambda d: d["tiers"][0].update(acknowledge_within="2d"),
            "tier urgent: gives more urgency than the tier above it",
        ),
        (
            lambda d: rule(d, "phq9-item9-half-the-days-or-more")["when"].update(at_least=7),
            "PHQ-9 item 9 answers are 0, 1, 2, 3",
        ),
        (
            lambda d: rule(d, "auditc-high")["when"].update(instrument="AUDIT-Z"),
            "instrument AUDIT-Z is not in the library",
        ),
        (lambda d: rule(d, "auditc-high").pop("source"), "rule auditc-high: needs a source"),
        (
            lambda d: d["rules"].append(dict(rule(d, "auditc-high"))),
            "rule auditc-high: id is used twice",
        ),
        (
            lambda d: rule(d, "auditc-high").update(tier="chosen"),
            "only the manual-flag rule may take tier: chosen",
        ),
        (lambda d: d.update(kind="instrument"), "must say kind: risk-rules"),
    ],
)
def test_a_broken_file_is_refused_naming_the_problem(change, problem):
    with pytest.raises(RuleFileError) as caught:
        parse_rules(broken(change), library=library())
    assert problem in str(caught.value)


def test_malformed_yaml_names_the_line():
    with pytest.raises(RuleFileError) as caught:
        parse_rules("kind: risk-rules\ntiers: [\n", library=library())
    assert "is not valid YAML at line" in str(caught.value)


class TestLoadingRules:
    def test_a_good_file_goes_into_force(self, session, people, plan):
        faster = broken(lambda d: d["tiers"][1].update(acknowledge_within="30m"))
        faster = faster.replace("version: '2026-11-22'", "version: clinic-1")
        row = load_rules(session, by=people.admin, organization=people.org, text=faster)
        commit(session)
        assert row.number == 1
        rules = rules_for(session, people.org.id)
        assert rules.tier("urgent").acknowledge_within.total_seconds() == 1800
        completed = respond(session, people, "ASQ", asq(2))
        assert completed.alert.rules_version.endswith("clinic-1")
        assert (completed.alert.due_at - completed.alert.created_at).total_seconds() == 1800

    def test_a_broken_file_changes_nothing(self, session, people, plan):
        good = broken(lambda d: d.update(version="clinic-good"))
        load_rules(session, by=people.admin, organization=people.org, text=good)
        commit(session)
        bad = broken(lambda d: rule(d, "asq-positive").pop("chain"))
        with pytest.raises(InvalidInput) as caught:
            load_rules(session, by=people.admin, organization=people.org, text=bad)
        assert "rule asq-positive: has no owner" in caught.value.errors["rules"]
        session.rollback()
        assert session.scalars(select(RiskRuleSet.version)).all() == ["clinic-good"]
        assert rules_for(session, people.org.id).version == "clinic-good"

    def test_rules_that_stop_compiling_fall_back_to_the_last_good_ones(self, session, people, plan):
        good = broken(lambda d: d.update(version="clinic-good"))
        load_rules(session, by=people.admin, organization=people.org, text=good)
        # A later row that no longer compiles (say, an instrument the clinic removed):
        session.add(
            RiskRuleSet(
                organization_id=people.org.id,
                number=2,
                code="clinic",
                version="stale",
                text=broken(lambda d: rule(d, "auditc-high")["when"].update(instrument="GONE")),
            )
        )
        commit(session)
        assert rules_for(session, people.org.id).version == "clinic-good"

    def test_with_no_file_loaded_the_defaults_are_in_force(self, session, people):
        assert rules_for(session, people.org.id) == default_rules()

    def test_the_administrators_page_loads_rules_and_refuses_a_broken_file(
        self, client, session, people, sign_in
    ):
        token = sign_in("admin@test.example.org")
        page = client.get("/admin/risk-rules")
        assert page.status_code == 200 and "Concord&#39;s defaults" in page.text
        bad = broken(lambda d: d["chains"].update(standard=[]))
        refused = client.post("/admin/risk-rules", data={"csrf_token": token, "rules": bad})
        assert refused.status_code == 422
        assert "chain standard: has no owner" in refused.text
        assert "the rules in force are unchanged" in refused.text
        assert session.scalars(select(RiskRuleSet)).all() == []
        good = broken(lambda d: d.update(version="clinic-2"))
        loaded = client.post(
            "/admin/risk-rules",
            data={"csrf_token": token},
            files={"file": ("rules.yaml", good.encode(), "application/yaml")},
        )
        assert loaded.status_code == 303
        assert "clinic-2" in client.get("/admin/risk-rules").text

    def test_only_administrators_see_the_rules_page(self, client, people, sign_in):
        sign_in("cara@test.example.org")
        assert client.get("/admin/risk-rules").status_code in (403, 404)


class TestAnInstrumentAddedAfterTheRules:
    """A clinic adds a licensed instrument with a critical answer that its rules do not name:
    the answer still raises an alert (the most serious tier, the first chain), and new rules
    that leave it out are refused."""

    @pytest.fixture
    def with_critical_instrument(self, tmp_path, monkeypatch):
        from pathlib import Path

        from concord.settings import get_settings

        fixture = Path(__file__).parent.parent / "measures" / "files" / "clinic-licensed.yaml"
        text = fixture.read_text().replace(
            "{id: positive, kind: positive,",
            "{id: danger, kind: critical, severity: urgent, name: {en: 'Danger', es: 'Peligro'},"
            " rule: {item: '9', at_least: 1}, source: 'test fixture'}\n"
            "  - {id: positive, kind: positive,",
        )
        own = tmp_path / "instruments"
        own.mkdir()
        (own / "clinic.yaml").write_text(text)
        monkeypatch.setenv("CONCORD_INSTRUMENTS_DIR", str(own))
        get_settings.cache_clear()
        yield
        get_settings.cache_clear()

    def test_its_critical_answer_still_raises_an_alert(
        self, session, people, plan, with_critical_instrument
    ):
        answers = {str(i): 0 for i in range(1, 11)}
        answers["9"] = 1
        completed = respond(session, people, "CLINIC-YN10", answers)
        assert completed.alert is not None
        assert (completed.alert.tier, completed.alert.rule_id) == ("acute", "critical-answer")
        assert completed.alert.triggers[0]["name"]["en"] == "Danger"
        assert completed.alert.owner_id == people.care_manager.id

    def test_new_rules_must_name_it(self, session, people, with_critical_instrument):
        with pytest.raises(InvalidInput) as caught:
            load_rules(session, by=people.admin, organization=people.org, text=DEFAULT)
        assert "CLINIC-YN10's critical flag danger has no rule" in caught.value.errors["rules"]
