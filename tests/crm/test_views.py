"""Staff customer pages: search, the 360 page (audited), supervisors' recompute, merge, import and export."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.auth.models import Role
from app.crm.models import Customer, CustomerContact, CustomerFeedback, CustomerMerge, Order, ValueRun
from app.crm.search import possible_duplicates, search_customers
from app.db import utcnow
from tests.factories import login, make_customer, make_interaction, make_order, make_staff


@pytest.fixture()
def agent(db_session):
    user = make_staff(db_session, role=Role.AGENT)
    db_session.commit()
    return user


@pytest.fixture()
def supervisor(db_session):
    user = make_staff(db_session, role=Role.SUPERVISOR)
    db_session.commit()
    return user


def _views(db_session, customer_id: int) -> list[AuditEntry]:
    return list(db_session.scalars(select(AuditEntry).where(AuditEntry.action == "crm.customer_viewed",
                                                            AuditEntry.target_id == str(customer_id))))


# --- search (service) ---------------------------------------------------------------------------------------

@pytest.fixture()
def people(db_session):
    li = make_customer(db_session, name="Li Na", phone="+8613800138000", email="li.na@example.cn", tier="vip")
    globex = make_customer(db_session, name="Globex Ltd", organisation="Globex", tier="major")
    db_session.add(CustomerContact(customer_id=globex.id, name="Buyer", phone_e164="+441632960001",
                                   email="buyer@globex.example"))
    tom = make_customer(db_session, name="Tom Brown", phone="+14155550101", tier="small")
    make_order(db_session, tom, number="A-1001")
    db_session.commit()
    return {"li": li, "globex": globex, "tom": tom}


@pytest.mark.parametrize("text,who,how", [
    ("li na", "li", ["name"]),                       # any case
    ("NA", "li", ["name"]),                          # any part
    ("138 0013 8000", "li", ["phone"]),              # typed the local way, normalised like a caller id
    ("+86 138-0013-8000", "li", ["phone"]),
    ("LI.NA@example.cn", "li", ["email"]),
    ("+44 1632 960001", "globex", ["phone"]),        # an organisation's contact finds the organisation
    ("buyer@globex.example", "globex", ["email"]),
    ("A-1001", "tom", ["order"]),
    ("globex", "globex", ["name"]),                  # organisation name
])
def test_search_finds_by_name_phone_email_and_order_number(db_session, people, text, who, how):
    page = search_customers(db_session, text, region="CN")
    assert [h.customer.id for h in page.items] == [people[who].id]
    assert page.items[0].matched_on == how and page.total == 1


def test_search_without_text_lists_everyone_newest_first_and_paginates(db_session, people):
    first = search_customers(db_session, "", region="CN", per_page=2)
    assert (first.total, first.pages, first.has_next, first.has_prev) == (3, 2, True, False)
    assert [h.customer.id for h in first.items] == [people["tom"].id, people["globex"].id]
    second = search_customers(db_session, "", region="CN", per_page=2, page=2)
    assert [h.customer.id for h in second.items] == [people["li"].id] and second.has_prev and not second.has_next
    assert search_customers(db_session, "", region="CN", tier="vip").total == 1
    clamped = search_customers(db_session, "", region="CN", page=-3, per_page=10_000)
    assert (clamped.page, clamped.per_page) == (1, 100)


def test_search_treats_like_wildcards_literally(db_session, people):
    assert search_customers(db_session, "%", region="CN").total == 0
    assert search_customers(db_session, "nobody", region="CN").items == []


def test_possible_duplicates_share_a_phone_email_or_name(db_session, people):
    twin = make_customer(db_session, name="li na", email="li.na@example.cn")
    other = make_customer(db_session, name="Someone", phone="+8613800138000")
    hits = {h.customer.id: h.matched_on for h in possible_duplicates(db_session, people["li"].id)}
    assert hits == {twin.id: ["email", "name"], other.id: ["phone"]}
    assert possible_duplicates(db_session, 999_999) == []


# --- pages -------------------------------------------------------------------------------------------------

def test_pages_need_a_signed_in_staff_member(client, people):
    assert client.get("/customers/").status_code == 302
    assert client.get(f"/customers/{people['li'].id}").status_code == 302


def test_search_page_lists_matches_in_english_and_chinese(client, db_session, agent, people):
    login(client, agent)
    page = client.get("/customers/?q=138+0013+8000").get_data(as_text=True)
    assert "Li Na" in page and "Tom Brown" not in page and "phone" in page
    assert 'for="q"' in page and 'role="search"' in page
    assert "Import CSV" not in page  # supervisors only
    chinese = client.get("/customers/?q=&lang=zh").get_data(as_text=True)
    assert "客户" in chinese and "Globex Ltd" in chinese
    assert "Next" not in client.get("/customers/?tier=bogus&lang=en").get_data(as_text=True)


def test_search_page_paginates(client, db_session, agent):
    for n in range(5):
        make_customer(db_session, name=f"Page Person {n}")
    db_session.commit()
    login(client, agent)
    page = client.get("/customers/?q=page+person&per_page=2&lang=en").get_data(as_text=True)
    assert "Page 1 of 3" in page and 'rel="next"' in page and 'rel="prev"' not in page
    last = client.get("/customers/?q=page+person&per_page=2&page=3&lang=en").get_data(as_text=True)
    assert "Page Person 0" in last and 'rel="prev"' in last


def test_customer_page_shows_the_360_view_and_is_audited(client, db_session, agent, desk_config):
    from app.crm.jobs import recompute_values

    li = make_customer(db_session, name="Li Na", phone="+8613800138000", email="li.na@example.cn")
    make_order(db_session, li, number="LN-1", total_cents=480_000, shipment_status="in_transit")
    make_order(db_session, li, number="LN-2", total_cents=520_000, placed_at=utcnow() - timedelta(days=40))
    db_session.add(CustomerFeedback(customer_id=li.id, kind="csat", score=5, comment="great", recorded_at=utcnow()))
    make_interaction(db_session, channel="email", customer=li, subject="Invoice question")
    db_session.commit()
    recompute_values(db_session, desk_config)
    login(client, agent)
    page = client.get(f"/customers/{li.id}?lang=en").get_data(as_text=True)
    for text in ("Li Na", "+86 138 0013 8000", "li.na@example.cn", "Tier", "RFM", "Lifetime value", "Loyalty",
                 "Churn risk", "Lifecycle", "LN-1", "LN-2", "in transit", "Invoice question", "great",
                 "Timeline across channels", "No open complaints."):
        assert text in page, text
    assert "Recompute value" not in page  # agents see, supervisors act
    entries = _views(db_session, li.id)
    assert len(entries) == 1 and entries[0].actor == f"staff:{agent.id}" and entries[0].data == {"via": "page"}
    chinese = client.get(f"/customers/{li.id}?lang=zh").get_data(as_text=True)
    assert "客户价值" in chinese and "忠诚" in chinese
    assert len(_views(db_session, li.id)) == 2
    assert client.get("/customers/999999").status_code == 404
    assert _views(db_session, 999999) == []


def test_customer_page_lists_open_complaints_with_deadlines(client, db_session, agent, desk_config):
    from app.complaints import service as complaints

    customer = make_customer(db_session, name="Jane Smith", email="jane@example.com")
    complaint = complaints.raise_complaint(db_session, desk_config, channel="voice", customer_id=customer.id,
                                           category="billing", description="Charged twice for one order.",
                                           scores={"financial_loss": 1})
    db_session.commit()
    login(client, agent)
    page = client.get(f"/customers/{customer.id}?lang=en").get_data(as_text=True)
    assert complaint.reference in page and "Resolve by" in page and "Acknowledge by" in page
    assert f"/complaints/{complaint.id}" in page


def test_supervisor_queues_a_recomputation(client, db_session, supervisor, people):
    login(client, supervisor)
    page = client.get(f"/customers/{people['li'].id}?lang=en").get_data(as_text=True)
    assert "Recompute value" in page and "Merge a duplicate" in page
    response = client.post(f"/customers/{people['li'].id}/recompute")
    assert response.status_code == 302
    run = db_session.scalar(select(ValueRun).order_by(ValueRun.id.desc()))
    assert run is not None and run.status == "done"  # JOBS_MODE=inline runs it at once
    assert db_session.scalar(select(AuditEntry).where(AuditEntry.action == "crm.value_recompute_requested"))
    assert client.post("/customers/999999/recompute").status_code == 404


def test_agents_cannot_act(client, db_session, agent, people):
    login(client, agent)
    li = people["li"].id
    assert client.post(f"/customers/{li}/recompute").status_code == 403
    assert client.get(f"/customers/{li}/merge?duplicate_id={people['tom'].id}").status_code == 403
    assert client.post(f"/customers/{li}/merge", data={"duplicate_id": people["tom"].id,
                                                       "confirm": "yes"}).status_code == 403
    assert client.get("/customers/import").status_code == 403
    assert client.get("/customers/export/customers.csv").status_code == 403


def test_merge_needs_a_confirmation_then_keeps_every_interaction(client, db_session, supervisor):
    from app.interactions.models import Interaction

    keep = make_customer(db_session, name="Li Na", email="li.na@example.cn").id
    twin_row = make_customer(db_session, name="Li Na (web)", phone="+8613800138000")
    calls = [make_interaction(db_session, customer=twin_row).id for _ in range(2)]
    make_order(db_session, twin_row, number="TW-1")
    twin = twin_row.id
    db_session.commit()
    login(client, supervisor)
    confirm = client.get(f"/customers/{keep}/merge?duplicate_id={twin}&lang=en").get_data(as_text=True)
    assert "Li Na (web)" in confirm and 'name="confirm"' in confirm and "Merge and delete the duplicate" in confirm
    unconfirmed = client.post(f"/customers/{keep}/merge", data={"duplicate_id": twin})
    assert unconfirmed.status_code == 302 and "merge?duplicate_id" in unconfirmed.headers["Location"]
    assert db_session.get(Customer, twin) is not None
    done = client.post(f"/customers/{keep}/merge", data={"duplicate_id": twin, "confirm": "yes"})
    assert done.status_code == 302
    db_session.expire_all()
    assert db_session.scalar(select(Customer.id).where(Customer.id == twin)) is None
    assert set(db_session.scalars(select(Interaction.customer_id).where(Interaction.id.in_(calls)))) == {keep}
    assert db_session.scalar(select(Order.customer_id).where(Order.number == "TW-1")) == keep
    assert db_session.scalar(select(CustomerMerge.actor)) == f"staff:{supervisor.id}"
    entry = db_session.scalar(select(AuditEntry).where(AuditEntry.action == "crm.customers_merged"))
    assert entry.target_id == str(keep) and entry.data["merged_customer_id"] == twin
    assert "merged into this record" in client.get(f"/customers/{keep}?lang=en").get_data(as_text=True)


def test_merge_refusals_are_explained(client, db_session, supervisor, people):
    login(client, supervisor)
    li = people["li"].id
    for bad in ("", li, 999999):
        response = client.get(f"/customers/{li}/merge?duplicate_id={bad}")
        assert response.status_code == 302 and response.headers["Location"].endswith(f"/customers/{li}")
    assert client.get(f"/customers/999999/merge?duplicate_id={li}").status_code == 404
    assert client.post(f"/customers/{li}/merge", data={"duplicate_id": 999999, "confirm": "yes"}).status_code == 404
    self_merge = client.post(f"/customers/{li}/merge", data={"duplicate_id": li, "confirm": "yes"},
                             follow_redirects=True)
    assert "cannot merge a customer into itself" in self_merge.get_data(as_text=True)


CSV = """name,phones,emails,consent_marketing
Wang Fang,138 0013 8111,wang@example.cn,yes
Bad Phone,12345,,
Bad Email,,not-an-email,
"""


def test_import_reports_every_row_and_is_audited(client, db_session, supervisor):
    login(client, supervisor)
    form = client.get("/customers/import?lang=en").get_data(as_text=True)
    assert 'for="file"' in form and "attr:loyalty_card" in form
    response = client.post("/customers/import?lang=en", data={
        "kind": "customers", "file": (io.BytesIO(("\ufeff" + CSV).encode()), "people.csv")},
        content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "3 row(s): 1 imported, 2 rejected." in page
    assert "12345" in page and "not-an-email" in page and ">phones<" in page and ">emails<" in page
    assert db_session.scalar(select(func.count()).select_from(Customer).where(Customer.name == "Wang Fang")) == 1
    entry = db_session.scalar(select(AuditEntry).where(AuditEntry.action == "crm.customers_imported"))
    assert entry.data["imported"] == 1 and entry.data["rejected"] == 2 and entry.data["file"] == "people.csv"


def test_import_orders_and_bad_uploads(client, db_session, supervisor, people):
    login(client, supervisor)
    orders = f"number,customer_id,placed_at,total\nN-1,{people['li'].id},2026-05-01,12.50\nN-2,abc,2026-05-01,1\n"
    page = client.post("/customers/import?lang=en", data={"kind": "orders", "file": (io.BytesIO(orders.encode()),
                                                                                     "o.csv")},
                       content_type="multipart/form-data").get_data(as_text=True)
    assert "2 row(s): 1 imported, 1 rejected." in page and "customer_id" in page
    assert db_session.scalar(select(Order.total_cents).where(Order.number == "N-1")) == 1250
    for data in ({"kind": "customers"}, {"kind": "nope", "file": (io.BytesIO(b"name\nA\n"), "a.csv")}):
        response = client.post("/customers/import", data=data, content_type="multipart/form-data")
        assert response.status_code == 302 and response.headers["Location"].endswith("/customers/import")
    latin = client.post("/customers/import?lang=en", data={"kind": "customers",
                                                           "file": (io.BytesIO("name\nJosé\n".encode("latin-1")),
                                                                    "l.csv")},
                        content_type="multipart/form-data", follow_redirects=True)
    assert "not UTF-8" in latin.get_data(as_text=True)
    header = client.post("/customers/import?lang=en", data={"kind": "customers",
                                                            "file": (io.BytesIO(b"nom\nA\n"), "h.csv")},
                         content_type="multipart/form-data").get_data(as_text=True)
    assert "missing column" in header


def test_export_streams_csv_and_is_audited(client, db_session, supervisor, people):
    login(client, supervisor)
    response = client.get("/customers/export/customers.csv")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert body.splitlines()[0].startswith("id,tier,is_prospect,name") and "Li Na" in body
    assert "attachment; filename=customers-" in response.headers["Content-Disposition"]
    orders = client.get("/customers/export/orders.csv").get_data(as_text=True)
    assert "A-1001" in orders
    actions = set(db_session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("crm.%_exported"))))
    assert actions == {"crm.customers_exported", "crm.orders_exported"}
    assert client.get("/customers/export/secrets.csv").status_code == 404


def test_api_360_is_audited_with_the_token(client, db_session, people):
    from app.auth.tokens import issue_token

    token, secret = issue_token(db_session, name="erp", scopes=["customers:read"])
    db_session.commit()
    li = people["li"].id
    assert client.get(f"/api/customers/{li}/360", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    entries = _views(db_session, li)
    assert [(e.actor, e.data) for e in entries] == [(f"token:{token.id}", {"via": "api"})]
    assert client.get("/api/customers/999999/360", headers={"Authorization": f"Bearer {secret}"}).status_code == 404


def test_customer_360_audits_only_with_an_actor(db_session, people):
    from app.crm.view360 import customer_360

    customer_360(db_session, people["li"].id)
    assert _views(db_session, people["li"].id) == []
    customer_360(db_session, people["li"].id, actor="staff:7", via="screenpop")
    db_session.flush()
    assert [(e.actor, e.data) for e in _views(db_session, people["li"].id)] == [("staff:7", {"via": "screenpop"})]


def test_numbers_and_addresses_are_not_searched_as_names(db_session):
    shop = make_customer(db_session, name="Shop 12345", organisation="mail@shop")
    assert search_customers(db_session, "Shop 1", region="CN").items[0].customer.id == shop.id
    assert search_customers(db_session, "12345", region="CN").total == 0
    assert search_customers(db_session, "mail@shop", region="CN").total == 0
