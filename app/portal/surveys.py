"""Satisfaction surveys after a contact closes: CSAT 1-5 with a comment and NPS 0-10, reached from a
signed link (no sign-in needed), answered once per contact. Answers are stored by the CRM
(``crm.service.record_feedback``), which feeds loyalty and churn signals."""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import force_locale, gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.crm.models import Customer, CustomerFeedback
from app.crm.service import record_feedback
from app.interactions.models import Interaction
from app.portal.mail import record_email

SALT = "portal.survey.v1"


class SurveyLinkInvalid(Exception):
    """The link was altered, is for another contact, or has expired."""


class SurveyAlreadyAnswered(Exception):
    """This contact's survey was answered before."""


@dataclass(frozen=True)
class SurveyTarget:
    interaction_id: int
    customer_id: int


def make_token(secret_key: str, interaction_id: int, customer_id: int) -> str:
    return URLSafeTimedSerializer(secret_key, salt=SALT).dumps([interaction_id, customer_id])


def read_token(secret_key: str, token: str, *, max_age_s: int) -> SurveyTarget:
    """Check the signature and age. Raises SurveyLinkInvalid."""
    try:
        interaction_id, customer_id = URLSafeTimedSerializer(secret_key, salt=SALT).loads(token, max_age=max_age_s)
    except (BadSignature, SignatureExpired, ValueError, TypeError) as exc:
        raise SurveyLinkInvalid(str(exc)) from exc
    return SurveyTarget(int(interaction_id), int(customer_id))


def already_answered(session: Session, target: SurveyTarget) -> bool:
    return session.scalar(select(CustomerFeedback.id).where(
        CustomerFeedback.interaction_id == target.interaction_id,
        CustomerFeedback.customer_id == target.customer_id)) is not None


def submit(session: Session, target: SurveyTarget, *, csat: int, nps: int | None, comment: str = "") -> None:
    """Store the answers (CSAT required, NPS optional). Raises SurveyAlreadyAnswered, SurveyLinkInvalid
    (the contact is not this customer's), ValueError for scores out of range. Does not commit."""
    interaction = session.get(Interaction, target.interaction_id)
    if interaction is None or interaction.customer_id != target.customer_id:
        raise SurveyLinkInvalid("contact does not belong to this customer")
    if already_answered(session, target):
        raise SurveyAlreadyAnswered(target.interaction_id)
    comment = comment.strip()[:2000] or None
    record_feedback(session, target.customer_id, "csat", csat, interaction_id=target.interaction_id,
                    comment=comment)
    if nps is not None:
        record_feedback(session, target.customer_id, "nps", nps, interaction_id=target.interaction_id)
    session.flush()


def survey_url(base_url: str, secret_key: str, interaction: Interaction) -> str:
    return f"{base_url.rstrip('/')}/portal/survey/{make_token(secret_key, interaction.id, interaction.customer_id)}"


def send_survey(session: Session, interaction_id: int, *, base_url: str, secret_key: str,
                to: str | None = None) -> bool:
    """Email the survey link for a closed contact to its customer. Returns False when there is nobody
    to ask (no customer or no address) or it was answered already. Does not commit."""
    interaction = session.get(Interaction, interaction_id)
    if interaction is None or interaction.customer_id is None:
        return False
    customer = session.get(Customer, interaction.customer_id)
    to = to or next((e.email for e in customer.emails), None)
    if not to or already_answered(session, SurveyTarget(interaction.id, customer.id)):
        return False
    with force_locale(customer.language):
        record_email(session, to=to, kind="survey", customer_id=customer.id, subject=_("How did we do?"),
                     body=_("Please tell us how we did (two questions, one minute): %(url)s",
                            url=survey_url(base_url, secret_key, interaction)))
    return True
