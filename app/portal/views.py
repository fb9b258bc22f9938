"""Portal pages: thin views over ``accounts``, ``cases``, ``kb`` and ``surveys``.

Every page that shows customer data takes the signed-in account's customer id and passes it to the
service, which refuses other customers' records as "not found" (404, never 403: no hint that a
record exists). Every POST is a Flask-WTF form (CSRF) and counts against a rate limit.
"""
from __future__ import annotations

import hashlib
import logging
from functools import wraps

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import get_locale, gettext as _
from flask_login import current_user, login_user, logout_user
from markupsafe import Markup
from wtforms.fields.choices import SelectChoice

from app.auth import ratelimit
from app.auth.models import Role
from app.auth.passwords import WeakPassword
from app.auth.roles import role_required, staff_allowed
from app.extensions import db
from app.portal import accounts, cases, kb, kb_text, surveys
from app.portal.attachments import AttachmentRejected
from app.portal.forms import (CaseForm, ComplaintForm, ConfirmForm, EmailOnlyForm, NewPasswordForm, ReplyForm,
                              SignInForm, SignUpForm, SurveyForm, VoteForm)
from app.portal.models import Attachment, CustomerAccount

log = logging.getLogger(__name__)
bp = Blueprint("portal", __name__, url_prefix="/portal")


def _desk():
    return current_app.extensions["desk.config"]


def _redis():
    return current_app.extensions["desk.redis"]


def _base_url() -> str:
    return current_app.config["PUBLIC_BASE_URL"]


def _lang() -> str:
    return str(get_locale())


def current_account() -> CustomerAccount | None:
    user = current_user._get_current_object() if getattr(current_user, "is_authenticated", False) else None
    return user if isinstance(user, CustomerAccount) else None


def customer_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_account() is None:
            return redirect(url_for("portal.signin", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def _within_limit(bucket: str, who: str | None = None) -> bool:
    config = _desk().portal
    key = f"portal:{bucket}:{who or request.remote_addr}"
    return ratelimit.hit(_redis(), key, limit=config.form_posts, window_s=config.rate_window_s)


def _too_many():
    return render_template("portal/message.html", title=_("Too many attempts"),
                           text=_("Too many attempts. Try again in 15 minutes.")), 429


def _sign_in(account: CustomerAccount):
    session.clear()  # a fresh session on sign-in (no fixation)
    login_user(account)
    session["lang"] = account.language
    db.session.commit()
    return redirect(_safe_next(request.args.get("next")) or url_for("portal.home"))


def _safe_next(target: str | None) -> str | None:
    if target and target.startswith("/portal/") and not target.startswith("//"):
        return target
    return None


# ------------------------------------------------------------------------------------ sign-in

@bp.route("/signin", methods=["GET", "POST"])
def signin():
    form = SignInForm()
    error = None
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        if not ratelimit.hit(_redis(), f"portal-signin:{request.remote_addr}:{email}",
                             limit=_desk().portal.sign_in_attempts, window_s=_desk().portal.rate_window_s):
            return _too_many()
        account = accounts.authenticate(db.session, email, form.password.data)
        if account is not None:
            ratelimit.reset(_redis(), f"portal-signin:{request.remote_addr}:{email}")
            return _sign_in(account)
        error = _("Wrong email or password.")
    return render_template("portal/signin.html", form=form, link_form=EmailOnlyForm(), error=error), \
        401 if error else 200


@bp.post("/signin/link")
def request_link():
    form = EmailOnlyForm()
    if not form.validate_on_submit():
        return render_template("portal/signin.html", form=SignInForm(), link_form=form, error=None), 400
    if not _within_limit("link", form.email.data.strip().lower()) or not _within_limit("link-ip"):
        return _too_many()
    accounts.request_login_link(db.session, form.email.data, config=_desk().portal, base_url=_base_url())
    db.session.commit()
    return render_template("portal/message.html", title=_("Check your email"),
                           text=_("If an account uses this address, a sign-in link is on its way."))


@bp.route("/signin/<any(link, verify):purpose>/<token>", methods=["GET", "POST"])
def use_link(purpose: str, token: str):
    """GET shows a button, POST uses the token: mail scanners that open links do not burn them."""
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            account = accounts.consume_token(db.session, token, "login" if purpose == "link" else "verify")
        except accounts.TokenInvalid:
            db.session.rollback()
            return render_template("portal/message.html", title=_("This link no longer works"),
                                   text=_("Sign-in links work once and expire. Ask for a new one.")), 400
        return _sign_in(account)
    return render_template("portal/confirm.html", form=form, title=_("Sign in"),
                           text=_("Continue to sign in to your account."))


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    form = SignUpForm()
    if request.method == "GET":
        form.language.data = _lang()
    if form.validate_on_submit():
        if not _within_limit("signup"):
            return _too_many()
        try:
            accounts.sign_up(db.session, name=form.name.data, email=form.email.data, password=form.password.data,
                             language=form.language.data, config=_desk().portal, base_url=_base_url())
        except WeakPassword:
            db.session.rollback()
            form.password.errors.append(_("Use at least 10 characters."))
            return render_template("portal/signup.html", form=form), 400
        db.session.commit()
        return render_template("portal/message.html", title=_("Check your email"),
                               text=_("We have sent a link to confirm your address. Follow it to sign in."))
    return render_template("portal/signup.html", form=form), 400 if form.errors else 200


@bp.route("/reset", methods=["GET", "POST"])
def reset_request():
    form = EmailOnlyForm()
    if form.validate_on_submit():
        if not _within_limit("reset", form.email.data.strip().lower()) or not _within_limit("reset-ip"):
            return _too_many()
        accounts.request_password_reset(db.session, form.email.data, config=_desk().portal, base_url=_base_url())
        db.session.commit()
        return render_template("portal/message.html", title=_("Check your email"),
                               text=_("If an account uses this address, a password reset link is on its way."))
    return render_template("portal/reset_request.html", form=form), 400 if form.errors else 200


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            account = accounts.reset_password(db.session, token, form.password.data)
        except accounts.TokenInvalid:
            db.session.rollback()
            return render_template("portal/message.html", title=_("This link no longer works"),
                                   text=_("Reset links work once and expire. Ask for a new one.")), 400
        except WeakPassword:
            db.session.rollback()
            form.password.errors.append(_("Use at least 10 characters."))
            return render_template("portal/reset_password.html", form=form), 400
        flash(_("Your password has been changed."))
        return _sign_in(account)
    return render_template("portal/reset_password.html", form=form), 400 if form.errors else 200


@bp.post("/signout")
def signout():
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    logout_user()
    session.clear()
    return redirect(url_for("portal.signin"))


# ------------------------------------------------------------------------------------ cases

def _uploads(field) -> list[cases.Upload]:
    limit = _desk().portal.attachments.max_bytes + 1
    return [cases.Upload(f.filename or "", f.read(limit)) for f in (field.data or []) if getattr(f, "filename", "")]


def _attachment_error(exc: AttachmentRejected) -> str:
    return {"too_large": _("A file is too large."), "type_not_allowed": _("Only images and PDF files can be sent."),
            "too_many": _("Too many files."), "empty": _("A file is empty.")}.get(exc.code, _("A file was refused."))


@bp.get("/")
@customer_required
def home():
    account = current_account()
    return render_template("portal/home.html", account=account,
                           cases=cases.list_cases(db.session, account.customer_id)[:10],
                           complaints=cases.complaints_of(db.session, account.customer_id)[:10],
                           status_of=cases.customer_status)


@bp.get("/history")
@customer_required
def history():
    account = current_account()
    return render_template("portal/history.html", rows=cases.customer_history(db.session, account.customer_id))


def _category_choices(items) -> list[SelectChoice]:
    return [SelectChoice(c.code, c.label_zh if _lang() == "zh" else c.label_en) for c in items]


@bp.route("/cases/new", methods=["GET", "POST"])
@customer_required
def new_case():
    account = current_account()
    form = CaseForm()
    form.category.choices = _category_choices(_desk().portal.case_categories)
    if form.validate_on_submit():
        if not _within_limit("case", f"account:{account.id}"):
            return _too_many()
        try:
            case = cases.open_case(db.session, _desk(), customer_id=account.customer_id,
                                   category=form.category.data, subject=form.subject.data,
                                   description=form.description.data, order_number=form.order_number.data,
                                   uploads=_uploads(form.files), base_url=_base_url())
        except cases.CaseInvalid as exc:
            db.session.rollback()
            getattr(form, exc.field).errors.append(_("Please check this field."))
            return render_template("portal/case_new.html", form=form), 400
        except AttachmentRejected as exc:
            db.session.rollback()
            form.files.errors.append(_attachment_error(exc))
            return render_template("portal/case_new.html", form=form), 400
        db.session.commit()
        flash(_("Thank you. Your reference is %(reference)s.", reference=cases.case_reference(case)))
        return redirect(url_for("portal.case_detail", case_id=case.id))
    return render_template("portal/case_new.html", form=form), 400 if form.errors else 200


@bp.route("/cases/<int:case_id>", methods=["GET", "POST"])
@customer_required
def case_detail(case_id: int):
    account = current_account()
    try:
        case = cases.get_case(db.session, account.customer_id, case_id)
    except cases.CaseNotFound:
        abort(404)
    form = ReplyForm()
    if form.validate_on_submit():
        if not _within_limit("reply", f"account:{account.id}"):
            return _too_many()
        try:
            cases.customer_reply(db.session, _desk(), customer_id=account.customer_id, case_id=case_id,
                                 body=form.body.data, uploads=_uploads(form.files))
        except (cases.CaseInvalid, AttachmentRejected) as exc:
            db.session.rollback()
            form.body.errors.append(_attachment_error(exc) if isinstance(exc, AttachmentRejected)
                                    else _("Please check this field."))
        else:
            db.session.commit()
            flash(_("Your reply has been sent."))
            return redirect(url_for("portal.case_detail", case_id=case_id))
    thread = cases.thread(db.session, account.customer_id, case_id)
    due = cases.reply_due(_desk(), case.queue, case.created_at) if cases.customer_status(case.state) != "closed" \
        else None
    return render_template("portal/case_detail.html", case=case, thread=thread, form=form, due=due,
                           status=cases.customer_status(case.state), reference=cases.case_reference(case)), \
        400 if form.errors else 200


@bp.route("/complaints/new", methods=["GET", "POST"])
@customer_required
def new_complaint():
    from app.complaints.service import IntakeInvalid

    account = current_account()
    form = ComplaintForm()
    form.category.choices = _category_choices(_desk().complaints.categories)
    if form.validate_on_submit():
        if not _within_limit("complaint", f"account:{account.id}"):
            return _too_many()
        try:
            complaint = cases.raise_portal_complaint(
                db.session, _desk(), customer_id=account.customer_id, category=form.category.data,
                description=form.description.data, order_number=form.order_number.data,
                remedy_sought=form.remedy_sought.data or "", uploads=_uploads(form.files))
        except (cases.CaseInvalid, IntakeInvalid) as exc:
            db.session.rollback()
            field = getattr(exc, "field", "description")
            getattr(form, field if hasattr(form, field) else "description").errors.append(
                _("Please check this field."))
            return render_template("portal/complaint_new.html", form=form), 400
        except AttachmentRejected as exc:
            db.session.rollback()
            form.files.errors.append(_attachment_error(exc))
            return render_template("portal/complaint_new.html", form=form), 400
        flash(_("Your complaint has been registered as %(reference)s.", reference=complaint.reference))
        return redirect(url_for("portal.complaint_detail", complaint_id=complaint.id))
    return render_template("portal/complaint_new.html", form=form), 400 if form.errors else 200


@bp.route("/complaints/<int:complaint_id>", methods=["GET", "POST"])
@customer_required
def complaint_detail(complaint_id: int):
    account = current_account()
    complaint = next((c for c in cases.complaints_of(db.session, account.customer_id) if c.id == complaint_id), None)
    if complaint is None:
        abort(404)
    form = ReplyForm()
    if form.validate_on_submit():
        if not _within_limit("complaint-reply", f"account:{account.id}"):
            return _too_many()
        try:
            cases.complaint_message(db.session, customer_id=account.customer_id, complaint_id=complaint_id,
                                    body=form.body.data, max_chars=_desk().portal.max_text_chars)
        except cases.CaseInvalid:
            db.session.rollback()
            form.body.errors.append(_("Please check this field."))
        else:
            db.session.commit()
            flash(_("Your message has been added to your complaint."))
            return redirect(url_for("portal.complaint_detail", complaint_id=complaint_id))
    return render_template("portal/complaint_detail.html", complaint=complaint, form=form,
                           messages=cases.complaint_messages(db.session, complaint)), 400 if form.errors else 200


@bp.get("/chats/<int:interaction_id>")
@customer_required
def chat_transcript(interaction_id: int):
    account = current_account()
    try:
        interaction, messages = cases.chat_transcript(db.session, account.customer_id, interaction_id)
    except cases.CaseNotFound:
        abort(404)
    return render_template("portal/chat_transcript.html", interaction=interaction, messages=messages)


@bp.get("/attachments/<int:attachment_id>")
def attachment(attachment_id: int):
    """A file for its own customer or for staff; anyone else gets 404."""
    from app.channels.chat_views import send_attachment

    row = db.session.get(Attachment, attachment_id)
    account = current_account()
    mine = account is not None and row is not None and row.customer_id == account.customer_id
    if row is None or not (mine or staff_allowed(Role.AGENT)):
        abort(404)
    return send_attachment(row)


# ------------------------------------------------------------------------------------ knowledge base

@bp.get("/kb/")
def kb_index():
    query = (request.args.get("q") or "").strip()
    hits = kb.search(db.session, query, language=_lang()) if query else []
    return render_template("portal/kb_index.html", query=query, hits=hits,
                           sections=[] if query else kb.by_category(db.session, _lang()))


@bp.get("/kb/suggest")
def kb_suggest():
    """Articles for the text being typed in a new case (JSON, at most three)."""
    hits = kb.suggest(db.session, request.args.get("q", "")[:500], language=_lang())
    return jsonify(articles=[{"title": h.article.title, "url": url_for("portal.kb_article", slug=h.article.slug)}
                             for h in hits])


def _voter() -> str:
    account = current_account()
    if account is not None:
        return f"customer:{account.id}"
    if "kb_voter" not in session:
        import secrets

        session["kb_voter"] = secrets.token_hex(8)
    return "visitor:" + hashlib.sha256(session["kb_voter"].encode()).hexdigest()[:32]


@bp.get("/kb/<slug>")
def kb_article(slug: str):
    article = kb.get_article(db.session, slug, _lang())
    if article is None:
        abort(404)
    return render_template("portal/kb_article.html", article=article, form=VoteForm(),
                           body_html=Markup(kb_text.to_safe_html(article.body)), voted=request.args.get("voted"))


@bp.post("/kb/<slug>/vote")
def kb_vote(slug: str):
    article = kb.get_article(db.session, slug, _lang())
    form = VoteForm()
    if article is None:
        abort(404)
    if not form.validate_on_submit() or form.helpful.data not in ("yes", "no"):
        abort(400)
    if not _within_limit("vote"):
        return _too_many()
    kb.vote(db.session, article.id, helpful=form.helpful.data == "yes", voter=_voter())
    db.session.commit()
    return redirect(url_for("portal.kb_article", slug=slug, voted=1))


@bp.get("/kb/report")
@role_required(Role.SUPERVISOR)
def kb_report():
    return render_template("portal/kb_report.html", rows=kb.vote_report(db.session))


# ------------------------------------------------------------------------------------ surveys and chat

@bp.route("/survey/<token>", methods=["GET", "POST"])
def survey(token: str):
    max_age = _desk().portal.survey_link_ttl_days * 86_400
    try:
        target = surveys.read_token(current_app.secret_key, token, max_age_s=max_age)
    except surveys.SurveyLinkInvalid:
        return render_template("portal/message.html", title=_("This link no longer works"),
                               text=_("Survey links expire after a while. Thank you all the same.")), 400
    if surveys.already_answered(db.session, target):
        return render_template("portal/message.html", title=_("Thank you"),
                               text=_("We already have your answers for this contact.")), 200
    form = SurveyForm()
    if form.validate_on_submit():
        if not _within_limit("survey"):
            return _too_many()
        try:
            surveys.submit(db.session, target, csat=int(form.csat.data),
                           nps=int(form.nps.data) if form.nps.data not in (None, "", "None") else None,
                           comment=form.comment.data or "")
        except surveys.SurveyLinkInvalid:
            db.session.rollback()
            abort(404)
        except surveys.SurveyAlreadyAnswered:
            db.session.rollback()
        else:
            db.session.commit()
        return render_template("portal/message.html", title=_("Thank you"),
                               text=_("Your answers help us do better."))
    return render_template("portal/survey.html", form=form), 400 if form.errors else 200


@bp.get("/chat")
def chat_page():
    """A full page with the chat widget (signed-in customers are recognised and skip the form)."""
    return render_template("portal/chat_page.html")
