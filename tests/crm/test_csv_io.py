"""CSV import (row-by-row report, batches) and export (re-importable)."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from app.crm.config import CrmConfig, CustomAttribute
from app.crm.csv_io import (
    export_customers, export_orders, import_customers, import_orders, parse_amount_cents, parse_when,
)
from app.crm.models import Customer, CustomerConsent, CustomerTag, Order
from tests.factories import make_customer

CONFIG = CrmConfig(custom_attributes=[CustomAttribute(name="loyalty_card"),
                                      CustomAttribute(name="size", type="choice", choices=["s", "m", "l"])])

GOOD_AND_BAD = """name,kind,phones,emails,tags,consent_marketing,attr:loyalty_card,attr:size
Li Na,individual,138 0013 8000;+86 139 0013 9000,li@example.cn,vip;press,yes,LC-1,m
,individual,,,,,,
Bad Phone,individual,12345,,,,,
Bad Email,individual,,not-an-email,,,,
Bad Consent,individual,,,,perhaps,,
Bad Size,individual,,,,,,xxl
Globex,business,+1 415 555 0100,buyer@globex.example,,no,,s
Too,many,cells,,,,,,,,
"""


def test_import_reports_each_bad_row_and_keeps_the_good(db_session):
    report = import_customers(db_session, io.StringIO(GOOD_AND_BAD), CONFIG, batch_size=3)
    assert (report.rows, report.imported, report.rejected) == (8, 2, 6)
    assert report.batches == 3
    bad = {r.line: r.errors for r in report.results if not r.ok}
    assert bad[3][0]["field"] == "name"
    assert bad[4][0]["field"] == "phones" and "12345" in bad[4][0]["message"]
    assert bad[5][0]["field"] == "emails"
    assert bad[6][0] == {"field": "consent_marketing", "message": "expected yes or no, got 'perhaps'"}
    assert bad[7][0]["field"] == "size"
    assert bad[9][0]["field"] == "(row)"
    li = db_session.scalar(select(Customer).where(Customer.name == "Li Na"))
    assert sorted(p.e164 for p in li.phones) == ["+8613800138000", "+8613900139000"]
    assert li.attributes == {"loyalty_card": "LC-1", "size": "m"}
    assert db_session.scalar(select(CustomerConsent.granted).where(CustomerConsent.customer_id == li.id)) is True
    lines = report.error_lines()
    assert any(line.startswith("line 4, phones:") for line in lines)
    assert report.to_dict()["imported"] == 2


def test_import_rejects_an_email_that_already_belongs_to_someone(db_session):
    existing = make_customer(db_session, email="li@example.cn")
    db_session.commit()
    report = import_customers(db_session, io.StringIO("name,emails\nLi Again,LI@example.cn\n"), CONFIG)
    assert report.rejected == 1
    assert report.results[0].errors == [{"field": "emails",
                                         "message": f"li@example.cn already belongs to customer {existing.id}"}]


@pytest.mark.parametrize("header,problem", [
    ("kind,phones\n", "missing column(s) ['name']"),
    ("name,shoe_size\n", "unknown column(s) ['shoe_size']"),
])
def test_bad_header_imports_nothing(db_session, header, problem):
    report = import_customers(db_session, io.StringIO(header + "x,y\n"), CONFIG)
    assert report.imported == 0 and problem in report.problems[0]


def test_unknown_attribute_column_is_reported_per_row(db_session):
    report = import_customers(db_session, io.StringIO("name,attr:shoe\nA,42\n"), CONFIG)
    assert report.problems == [] and report.rejected == 1
    assert report.results[0].errors == [{"field": "attr:shoe",
                                         "message": "not a custom attribute declared in config.yaml"}]


def test_export_then_import_round_trips(db_session):
    import_customers(db_session, io.StringIO(GOOD_AND_BAD), CONFIG)
    exported = "".join(export_customers(db_session, CONFIG, chunk=1))
    assert exported.splitlines()[0].startswith("id,tier,is_prospect,name")
    assert "Li Na" in exported and "+8613800138000;+8613900139000" in exported
    for customer in db_session.scalars(select(Customer)).all():
        db_session.delete(customer)
    db_session.execute(CustomerConsent.__table__.delete())
    db_session.execute(CustomerTag.__table__.delete())
    db_session.commit()
    again = import_customers(db_session, io.StringIO(exported), CONFIG)
    assert again.problems == [] and again.imported == 2 and again.rejected == 0

    def without_ids(text: str) -> list[str]:
        return [line.split(",", 1)[1] for line in text.splitlines()[1:]]

    assert without_ids("".join(export_customers(db_session, CONFIG))) == without_ids(exported)


# --- orders --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,cents", [("0", 0), ("12", 1200), ("12.5", 1250), ("1234.56", 123456)])
def test_amounts(text, cents):
    assert parse_amount_cents(text) == cents


@pytest.mark.parametrize("text", ["", "abc", "-1", "1.234", "1,234.00", "NaN", "inf"])
def test_bad_amounts(text):
    with pytest.raises(ValueError, match="total"):
        parse_amount_cents(text)


@pytest.mark.parametrize("text,zone,iso", [
    ("2026-05-01", "Asia/Shanghai", "2026-05-01T00:00:00+08:00"),
    ("2026-05-01T14:30:00+00:00", "Asia/Shanghai", "2026-05-01T14:30:00+00:00"),
    ("2026-05-01 09:15", "UTC", "2026-05-01T09:15:00+00:00"),
])
def test_dates(text, zone, iso):
    assert parse_when(text, zone).isoformat() == iso


def test_bad_date():
    with pytest.raises(ValueError, match="placed_at"):
        parse_when("01/05/2026", "UTC")


def test_import_orders_by_id_email_or_phone(db_session):
    a = make_customer(db_session, email="a@example.cn", phone="+8613800138000")
    make_customer(db_session, phone="+8613900139000")
    make_customer(db_session, phone="+8613900139000")
    db_session.commit()
    csv_text = (
        "number,customer_id,customer_email,customer_phone,placed_at,status,total,carrier,tracking_number\n"
        f"SO-1,{a.id},,,2026-05-01,shipped,99.90,SF Express,SF1\n"
        "SO-2,,A@example.cn,,2026-05-02T10:00+08:00,paid,10,,\n"
        "SO-3,,,138 0013 8000,2026-05-03,placed,1.5,,\n"
        "SO-4,,,139 0013 9000,2026-05-03,placed,1,,\n"
        "SO-5,,nobody@example.cn,,2026-05-03,placed,1,,\n"
        "SO-6,,,,2026-05-03,placed,1,,\n"
        "SO-7,x,,,2026-05-03,placed,1,,\n"
        f"SO-8,{a.id},,,yesterday,placed,1,,\n"
        f"SO-9,{a.id},,,2026-05-03,placed,-3,,\n"
        f"SO-1,{a.id},,,2026-05-03,placed,1,,\n"
        f"SO-10,{a.id},,,2026-05-03,teleported,1,,\n"
        "SO-11,99999,,,2026-05-03,placed,1,,\n"
        "SO-12,,,12,2026-05-03,placed,1,,\n"
    )
    report = import_orders(db_session, io.StringIO(csv_text), CONFIG, zone="Asia/Shanghai")
    assert report.imported == 3, report.error_lines()
    errors = {r.line: r.errors[0] for r in report.results if not r.ok}
    assert "2 customers match" in errors[5]["message"]
    assert "no customer match" in errors[6]["message"]
    assert errors[7]["field"] == "customer_id"
    assert errors[8]["field"] == "customer_id" and "not a number" in errors[8]["message"]
    assert errors[9]["field"] == "placed_at" and errors[10]["field"] == "total"
    assert "already used" in errors[11]["message"] and errors[12]["field"] == "status"
    assert "does not exist" in errors[13]["message"] and errors[14]["field"] == "customer_phone"
    first = db_session.scalar(select(Order).where(Order.number == "SO-1"))
    assert first.total_cents == 9990 and first.shipments[0].tracking_number == "SF1"
    assert first.placed_at.isoformat() == "2026-04-30T16:00:00+00:00"
    exported = "".join(export_orders(db_session, chunk=2))
    assert exported.count("\n") == 4 and "99.90" in exported
    assert db_session.scalar(select(func.count()).select_from(Order)) == 3
