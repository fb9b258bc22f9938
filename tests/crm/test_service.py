"""Identification, 360 view, customer changes, merge, feedback."""
from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from app.crm import service
from app.crm.config import CustomAttribute
from app.crm.errors import CustomerNotFound, DuplicateOrder, InvalidAttributes, MergeConflict
from app.crm.models import (
    Customer, CustomerConsent, CustomerContact, CustomerFeedback, CustomerMerge, CustomerPhone, CustomerTag,
    CustomerValueSnapshot,
)
from app.crm.schemas import CustomerIn, CustomerPatch, OrderIn
from app.crm.service import MatchStatus, identify
from app.db import utcnow
from app.interactions.models import Interaction
from app.portal.models import CustomerAccount
from tests.factories import make_customer, make_interaction, make_order, make_staff

ATTRS = [CustomAttribute(name="loyalty_card", type="text", label_en="Loyalty card", label_zh="会员卡"),
         CustomAttribute(name="employees", type="integer"),
         CustomAttribute(name="wholesale", type="boolean"),
         CustomAttribute(name="birthday", type="date"),
         CustomAttribute(name="segment", type="choice", choices=["retail", "trade"], required=True)]


# --- identify --------------------------------------------------------------------------------------------

def test_identify_by_caller_id_in_any_format(db_session):
    customer = make_customer(db_session, phone="+8613812345678")
    result = identify(db_session, phone="138 1234 5678")
    assert result.status == MatchStatus.MATCHED and result.customer_id == customer.id
    assert result.matched_on == ["phone"] and "identified by phone" in result.message_en
    assert "电话" in result.message_zh


def test_identify_by_email_is_case_insensitive(db_session):
    customer = make_customer(db_session, email="li.na@example.cn")
    result = identify(db_session, email="  Li.Na@Example.CN ")
    assert result.status == MatchStatus.MATCHED and result.customer_id == customer.id


def test_identify_emails_answers_like_identify_for_the_addresses_it_settles(db_session):
    one = make_customer(db_session, email="one@example.cn", language="zh", tier="vip")
    org = make_customer(db_session, name="Globex", kind="business")
    db_session.add(CustomerContact(customer_id=org.id, name="Buyer", email="buyer@globex.test"))
    make_customer(db_session, email="shared@example.cn")
    make_customer(db_session, email="shared@example.cn")
    db_session.flush()
    addresses = [" One@Example.CN", "buyer@globex.test", "shared@example.cn", "nobody@example.cn", "not-an-address"]
    found = service.identify_emails(db_session, addresses)
    assert set(found) == {" One@Example.CN", "buyer@globex.test"}, "ambiguous and unknown are left to identify"
    for address, result in found.items():
        assert result.to_dict() == identify(db_session, email=address, create_prospect=False).to_dict()
    assert found[" One@Example.CN"].customer_id == one.id and found[" One@Example.CN"].candidates[0].language == "zh"
    assert found["buyer@globex.test"].customer_id == org.id and found["buyer@globex.test"].contact_id is not None
    assert service.identify_emails(db_session, []) == {}
    assert db_session.scalar(select(func.count()).select_from(Customer)) == 4, "never creates a prospect"


def test_two_customers_sharing_a_phone_are_shown_never_guessed(db_session):
    a = make_customer(db_session, name="Wang Fang", phone="+8613900001111", tier="vip")
    b = make_customer(db_session, name="Wang Lei", phone="+8613900001111", tier="small")
    result = identify(db_session, phone="+8613900001111")
    assert result.status == MatchStatus.AMBIGUOUS and result.customer_id is None
    assert [c.customer_id for c in result.candidates] == [a.id, b.id]  # VIP listed first
    assert result.to_dict()["status"] == "ambiguous"


def test_phone_and_email_that_agree_pick_the_one_customer(db_session):
    a = make_customer(db_session, phone="+8613900001111", email="fang@example.cn")
    make_customer(db_session, phone="+8613900001111")
    result = identify(db_session, phone="+8613900001111", email="fang@example.cn")
    assert result.status == MatchStatus.MATCHED and result.customer_id == a.id
    assert sorted(result.matched_on) == ["email", "phone"]


def test_phone_and_email_of_different_customers_are_ambiguous(db_session):
    a = make_customer(db_session, phone="+8613900001111")
    b = make_customer(db_session, email="other@example.cn")
    result = identify(db_session, phone="+8613900001111", email="other@example.cn")
    assert result.status == MatchStatus.AMBIGUOUS
    assert {c.customer_id for c in result.candidates} == {a.id, b.id}


def test_organisation_contact_phone_identifies_the_organisation(db_session):
    org = make_customer(db_session, name="Globex", kind="business")
    db_session.add(CustomerContact(customer_id=org.id, name="Hank Scorpio", phone_e164="+14155550199"))
    db_session.flush()
    result = identify(db_session, phone="+1 415 555 0199")
    assert result.status == MatchStatus.MATCHED and result.customer_id == org.id
    assert result.contact_id is not None


def test_portal_account_is_authoritative(db_session):
    a = make_customer(db_session, phone="+8613900001111")
    make_customer(db_session, phone="+8613900001111")
    account = CustomerAccount(customer_id=a.id, email="a@example.cn")
    db_session.add(account)
    db_session.flush()
    result = identify(db_session, account_id=account.id, phone="+8613900001111")
    assert result.status == MatchStatus.MATCHED and result.matched_on == ["account"]
    unknown = identify(db_session, account_id=999_999, phone="+8613900001111")
    assert unknown.status == MatchStatus.AMBIGUOUS


def test_unknown_caller_becomes_a_prospect_once(db_session):
    first = identify(db_session, phone="+8613711112222", language="zh")
    assert first.status == MatchStatus.NEW_PROSPECT
    prospect = db_session.get(Customer, first.customer_id)
    assert prospect.is_prospect and prospect.language == "zh" and prospect.phones[0].e164 == "+8613711112222"
    again = identify(db_session, phone="13711112222")
    assert again.status == MatchStatus.MATCHED and again.customer_id == first.customer_id


def test_a_prospect_with_a_reserved_id_is_written_with_the_next_flush(db_session):
    from sqlalchemy import text

    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("ids are reserved from PostgreSQL sequences")
    reserved = db_session.scalar(text("SELECT nextval(pg_get_serial_sequence('customers', 'id'))"))
    result = identify(db_session, email="Fresh@example.com", name="Fresh", language="zh", prospect_id=reserved)
    assert result.status == MatchStatus.NEW_PROSPECT and result.customer_id == reserved
    [candidate] = result.candidates  # the prospect's facts, as a matched customer's are given
    assert (candidate.name, candidate.tier, candidate.language, candidate.is_prospect) == ("Fresh", "small", "zh", True)
    with db_session.no_autoflush:  # nothing written yet
        assert db_session.scalar(text("SELECT count(*) FROM customers WHERE id = :id"), {"id": reserved}) == 0
    db_session.flush()
    assert db_session.get(Customer, reserved).emails[0].email == "fresh@example.com"


def test_unknown_email_prospect_and_no_prospect_when_not_wanted(db_session):
    result = identify(db_session, email="new@example.com", name="New Person")
    assert result.status == MatchStatus.NEW_PROSPECT
    assert db_session.get(Customer, result.customer_id).name == "New Person"
    assert identify(db_session, email="x@example.com", create_prospect=False).status == MatchStatus.UNKNOWN


@pytest.mark.parametrize("phone", ["anonymous", "", "+266696687", None])
def test_anonymous_caller_is_unknown_and_creates_nothing(db_session, phone):
    result = identify(db_session, phone=phone)
    assert result.status == MatchStatus.UNKNOWN
    assert db_session.scalar(select(func.count()).select_from(Customer)) == 0


# --- attributes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values,cleaned", [
    ({"segment": "retail"}, {"segment": "retail"}),
    ({"segment": "trade", "employees": "12", "wholesale": "yes", "birthday": "1990-02-03", "loyalty_card": 42},
     {"segment": "trade", "employees": 12, "wholesale": True, "birthday": "1990-02-03", "loyalty_card": "42"}),
    ({"segment": "trade", "wholesale": False, "employees": -3}, {"segment": "trade", "wholesale": False,
                                                                  "employees": -3}),
    ({"segment": "trade", "wholesale": "否", "birthday": None}, {"segment": "trade", "wholesale": False,
                                                                  "birthday": None}),
])
def test_attributes_coerced(values, cleaned):
    assert service.validate_attributes(ATTRS, values) == cleaned


@pytest.mark.parametrize("values,bad", [
    ({}, ["segment"]),
    ({"segment": "wholesale"}, ["segment"]),
    ({"segment": "retail", "employees": "many", "wholesale": "perhaps", "birthday": "03/02/1990"},
     ["birthday", "employees", "wholesale"]),
    ({"segment": "retail", "employees": True}, ["employees"]),
    ({"segment": "retail", "shoe_size": 42}, ["shoe_size"]),
    ({"segment": "retail", "loyalty_card": "x" * 501}, ["loyalty_card"]),
])
def test_attributes_rejected_with_every_key_named(values, bad):
    with pytest.raises(InvalidAttributes) as caught:
        service.validate_attributes(ATTRS, values)
    assert sorted(caught.value.problems) == bad
    assert caught.value.to_dict()["error"] == "invalid_attributes" and caught.value.zh


def test_partial_attributes_skip_required():
    assert service.validate_attributes(ATTRS, {"employees": 3}, partial=True) == {"employees": 3}


# --- create / update ------------------------------------------------------------------------------------------

def _new(db_session, **fields):
    data = CustomerIn.model_validate({"name": "Zhao Min", "attributes": {"segment": "retail"}, **fields},
                                     context={"region": "CN"})
    return service.create_customer(db_session, data, attribute_defs=ATTRS)


def test_create_customer_with_everything(db_session):
    customer = _new(db_session, kind="business", phones=["13800138000"], emails=["A@B.CN"], tags=["Key", "key"],
                    consents={"marketing": True, "calls": False},
                    contacts=[{"name": "Buyer", "phone": "13900139000", "is_primary": True}])
    assert customer.phones[0].e164 == "+8613800138000" and customer.emails[0].email == "a@b.cn"
    assert list(db_session.scalars(select(CustomerTag.tag))) == ["key"]
    consents = {c.purpose: c.granted for c in db_session.scalars(select(CustomerConsent))}
    assert consents == {"marketing": True, "calls": False}
    assert db_session.scalar(select(CustomerContact.phone_e164)) == "+8613900139000"


def test_update_customer_changes_only_what_is_named(db_session):
    customer = _new(db_session, phones=["13800138000"], tags=["a", "b"], organisation="Org",
                    consents={"marketing": True})
    patch = CustomerPatch.model_validate({"language": "zh", "phones": ["13800138000", "13900139000"],
                                          "tags": ["b", "c"], "consents": {"marketing": False},
                                          "attributes": {"employees": 5, "segment": None},
                                          "organisation": None, "contacts": []}, context={"region": "CN"})
    service.update_customer(db_session, customer.id, patch, attribute_defs=ATTRS)
    db_session.refresh(customer)
    assert customer.language == "zh" and customer.name == "Zhao Min" and customer.organisation is None
    assert sorted(p.e164 for p in customer.phones) == ["+8613800138000", "+8613900139000"]
    assert sorted(db_session.scalars(select(CustomerTag.tag))) == ["b", "c"]
    assert db_session.scalar(select(CustomerConsent.granted)) is False
    assert customer.attributes == {"employees": 5}
    patch = CustomerPatch.model_validate({"emails": ["x@y.cn"], "phones": []})
    service.update_customer(db_session, customer.id, patch, attribute_defs=ATTRS)
    db_session.refresh(customer)
    assert customer.phones == [] and [e.email for e in customer.emails] == ["x@y.cn"]


def test_update_missing_customer(db_session):
    with pytest.raises(CustomerNotFound) as caught:
        service.update_customer(db_session, 404, CustomerPatch(), attribute_defs=[])
    assert "404" in caught.value.en and "404" in caught.value.zh


def test_set_consent_records_source(db_session):
    customer = make_customer(db_session)
    service.set_consent(db_session, customer.id, "recording", True, source="ivr")
    service.set_consent(db_session, customer.id, "recording", True, source="agent")
    row = db_session.scalar(select(CustomerConsent))
    assert row.granted and row.source == "ivr"  # unchanged answer keeps its origin


def test_create_order_makes_a_prospect_a_buyer_and_refuses_duplicates(db_session):
    customer = make_customer(db_session, is_prospect=True)
    data = OrderIn.model_validate({"customer_id": customer.id, "number": "SO-1", "placed_at": "2026-01-02T03:04:05Z",
                                   "lines": [{"sku": "A", "unit_price_cents": 250, "quantity": 2}],
                                   "shipments": [{"carrier": "SF", "tracking_number": "SF1"}]})
    order = service.create_order(db_session, data)
    assert order.total_cents == 500 and order.shipments[0].carrier == "SF"
    assert customer.is_prospect is False
    with pytest.raises(DuplicateOrder):
        service.create_order(db_session, data)
    with pytest.raises(CustomerNotFound):
        service.create_order(db_session, data.model_copy(update={"customer_id": 999, "number": "SO-2"}))


def test_order_validation_messages():
    with pytest.raises(ValidationError, match="differs from the lines"):
        OrderIn.model_validate({"customer_id": 1, "number": "A", "placed_at": "2026-01-01T00:00:00Z",
                                "total_cents": 7, "lines": [{"sku": "A", "unit_price_cents": 5}]})
    with pytest.raises(ValidationError, match="total_cents or at least one line"):
        OrderIn.model_validate({"customer_id": 1, "number": "A", "placed_at": "2026-01-01T00:00:00Z"})


@pytest.mark.parametrize("kind,score", [("csat", 0), ("csat", 6), ("nps", 11), ("nps", -1), ("ces", 3),
                                        ("csat", True), ("csat", 4.5)])
def test_feedback_out_of_range_is_refused(db_session, kind, score):
    customer = make_customer(db_session)
    with pytest.raises(ValueError):
        service.record_feedback(db_session, customer.id, kind, score)


# --- 360 ---------------------------------------------------------------------------------------------------

def test_customer_360_gathers_everything(db_session):
    agent = make_staff(db_session, name="Alice Agent")
    customer = _new(db_session, phones=["13800138000"], emails=["z@example.cn"], tags=["vip-watch"],
                    consents={"calls": True}, attributes={"segment": "retail", "loyalty_card": "LC-1"})
    for days in range(12):
        make_order(db_session, customer, placed_at=utcnow() - timedelta(days=days), shipment_status="in_transit")
    interaction = make_interaction(db_session, customer=customer, channel="chat")
    interaction.agent_id = agent.id
    make_interaction(db_session, customer=customer, channel="voice")
    service.record_feedback(db_session, customer.id, "csat", 5, interaction_id=interaction.id)
    service.record_feedback(db_session, customer.id, "csat", 4)
    service.record_feedback(db_session, customer.id, "nps", 9)
    db_session.flush()

    view = service.customer_360(db_session, customer.id, attribute_defs=ATTRS)

    identity = view["customer"]
    assert identity["phones"][0] == {"e164": "+8613800138000", "display": "+86 138 0013 8000", "label": "mobile"}
    assert identity["kind_label"] == {"en": "individual consumer", "zh": "个人消费者"}
    assert identity["tags"] == ["vip-watch"] and identity["consents"]["calls"]["granted"] is True
    card = next(a for a in identity["attributes"] if a["name"] == "loyalty_card")
    assert card["label"] == {"en": "Loyalty card", "zh": "会员卡"}
    assert view["value"]["computed"] is False and view["value"]["reasons"][0]["zh"]
    assert view["satisfaction"]["csat_avg"] == 4.5 and view["satisfaction"]["nps_count"] == 1
    assert len(view["orders"]) == 10 and view["counts"]["orders"] == 12
    assert view["orders"][0]["shipments"][0]["status"] == "in_transit"
    assert {i["channel"] for i in view["interactions"]} == {"chat", "voice"}
    assert any(i["agent"] == "Alice Agent" for i in view["interactions"])
    assert view["complaints"] == [] and view["compensation"]["total_cents"] == 0


def test_customer_360_shows_stored_value_with_reasons(db_session):
    customer = make_customer(db_session, tier="vip")
    db_session.add(CustomerValueSnapshot(
        customer_id=customer.id, tier="vip", r=5, f=4, m=5, segment="mvc", stage="active", loyalty="true",
        churn_risk="none", churn_signals=[], revenue_cents=10, peak_tier="vip", net_value_cents=3, ltv_cents=9,
        explanation={"tier": {"tier": "vip", "reasons": [{"code": "tier", "en": "VIP: rank 1", "zh": "VIP：第 1"}]}},
        computed_at=utcnow()))
    db_session.flush()
    value = service.customer_360(db_session, customer.id)["value"]
    assert value["computed"] and value["rfm"]["code"] == "R5F4M5"
    assert value["tier_label"]["zh"] == "VIP 客户" and value["loyalty_label"]["en"] == "true loyalty"
    assert value["reasons"]["tier"][0]["en"] == "VIP: rank 1"


def test_customer_360_of_missing_customer(db_session):
    with pytest.raises(CustomerNotFound):
        service.customer_360(db_session, 12345)


# --- merge ---------------------------------------------------------------------------------------------------

def test_merge_keeps_every_interaction_order_and_identifier(db_session):
    survivor = make_customer(db_session, name="Li Na", phone="+8613800138000", email="li@example.cn")
    duplicate = make_customer(db_session, name="Li Na (dup)", phone="+8613800138000", email="li.na@work.cn",
                              organisation="ACME")
    duplicate.phones.append(CustomerPhone(e164="+8613900139000"))
    for who in (survivor, duplicate, duplicate):
        make_interaction(db_session, customer=who)
        make_order(db_session, who)
    service.set_consent(db_session, survivor.id, "marketing", False, source="agent")
    service.set_consent(db_session, duplicate.id, "marketing", True, source="portal")
    service.set_consent(db_session, duplicate.id, "calls", True, source="portal")
    service.record_feedback(db_session, duplicate.id, "csat", 5)
    db_session.add(CustomerTag(customer_id=duplicate.id, tag="x"))
    db_session.add(CustomerValueSnapshot(customer_id=duplicate.id, tier="small", r=1, f=1, m=1, segment="standard",
                                         stage="active", loyalty="none", churn_risk="none", peak_tier="small",
                                         computed_at=utcnow()))
    db_session.flush()
    survivor_id, duplicate_id = survivor.id, duplicate.id

    record = service.merge_customers(db_session, survivor_id, duplicate_id, actor="staff:1")

    assert db_session.get(Customer, duplicate_id) is None
    assert db_session.scalar(select(func.count()).select_from(Interaction)
                             .where(Interaction.customer_id == survivor_id)) == 3
    merged = db_session.get(Customer, survivor_id)
    assert sorted(p.e164 for p in merged.phones) == ["+8613800138000", "+8613900139000"]
    assert sorted(e.email for e in merged.emails) == ["li.na@work.cn", "li@example.cn"]
    assert merged.organisation == "ACME" and len(service.customer_360(db_session, survivor_id)["orders"]) == 3
    consents = {c.purpose: c.granted for c in db_session.scalars(select(CustomerConsent))}
    assert consents == {"marketing": False, "calls": True}  # the survivor's answer wins
    assert db_session.scalar(select(CustomerFeedback.customer_id)) == survivor_id
    assert record.moved["interactions"] == 2 and record.moved["orders"] == 2
    assert db_session.scalar(select(CustomerMerge.merged_name)) == "Li Na (dup)"


def test_merge_refuses_self_missing_and_two_portal_accounts(db_session):
    a, b = make_customer(db_session), make_customer(db_session)
    with pytest.raises(MergeConflict):
        service.merge_customers(db_session, a.id, a.id, actor="t")
    with pytest.raises(CustomerNotFound):
        service.merge_customers(db_session, a.id, 9999, actor="t")
    db_session.add_all([CustomerAccount(customer_id=a.id, email="a@x.cn"),
                        CustomerAccount(customer_id=b.id, email="b@x.cn")])
    db_session.flush()
    with pytest.raises(MergeConflict) as caught:
        service.merge_customers(db_session, a.id, b.id, actor="t")
    assert caught.value.details["table"] == "customer_accounts"


def test_merge_moves_a_single_portal_account(db_session):
    a, b = make_customer(db_session), make_customer(db_session)
    db_session.add(CustomerAccount(customer_id=b.id, email="b@x.cn"))
    db_session.flush()
    service.merge_customers(db_session, a.id, b.id, actor="t")
    assert db_session.scalar(select(CustomerAccount.customer_id)) == a.id


def test_value_summary_for_other_domains(db_session):
    assert service.value_summary(db_session, 4040) is None
    customer = make_customer(db_session, tier="major")
    summary = service.value_summary(db_session, customer.id)
    assert summary["tier"] == "major" and summary["computed"] is False and summary["open_complaints"] == 0
    db_session.add(CustomerValueSnapshot(customer_id=customer.id, tier="vip", r=5, f=5, m=4, segment="mvc",
                                         stage="active", loyalty="true", churn_risk="low",
                                         churn_signals=["open_complaint"], peak_tier="vip", computed_at=utcnow()))
    db_session.flush()
    summary = service.value_summary(db_session, customer.id)
    assert summary["tier"] == "vip" and summary["rfm"] == "R5F5M4" and summary["churn_signals"] == ["open_complaint"]


def test_customer_360_counts_stop_at_the_cap(db_session):
    from sqlalchemy import insert

    from app.crm.models import Order
    from app.crm.view360 import COUNT_CAP

    customer = make_customer(db_session)
    now = utcnow()
    db_session.execute(insert(Order), [{"customer_id": customer.id, "number": f"CAP{n:05d}", "total_cents": 100,
                                        "currency": "CNY", "status": "delivered",
                                        "placed_at": now - timedelta(minutes=n)} for n in range(COUNT_CAP + 5)])
    make_interaction(db_session, customer=customer)
    view = service.customer_360(db_session, customer.id, orders_limit=3)
    assert view["counts"] == {"orders": COUNT_CAP, "interactions": 1, "cap": COUNT_CAP}
    assert [o["number"] for o in view["orders"]] == ["CAP00000", "CAP00001", "CAP00002"]
    assert view["orders"][0]["customer_id"] == customer.id
