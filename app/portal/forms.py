"""Portal forms (Flask-WTF: every one carries a CSRF token)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (EmailField, HiddenField, PasswordField, RadioField, SelectField, StringField, SubmitField,
                     TextAreaField)

from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_EMAIL_CHECKS = [DataRequired(), Regexp(EMAIL_PATTERN, message=_l("Enter a valid email address.")), Length(max=254)]


class SignInForm(FlaskForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    submit = SubmitField(_l("Sign in"))


class EmailOnlyForm(FlaskForm):
    email = EmailField(_l("Email"), validators=_EMAIL_CHECKS)
    submit = SubmitField(_l("Send me a link"))


class ConfirmForm(FlaskForm):
    submit = SubmitField(_l("Continue"))


class SignUpForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[DataRequired(), Length(max=120)])
    email = EmailField(_l("Email"), validators=_EMAIL_CHECKS)
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField(_l("Repeat the password"), validators=[EqualTo("password")])
    language = SelectField(_l("Language"), choices=[SelectChoice("en", "English"), SelectChoice("zh", "中文")])
    submit = SubmitField(_l("Create account"))


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField(_l("Repeat the password"), validators=[EqualTo("password")])
    submit = SubmitField(_l("Save password"))


class CaseForm(FlaskForm):
    category = SelectField(_l("What is it about?"), validators=[DataRequired()])
    subject = StringField(_l("Subject"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Describe your question"), validators=[DataRequired(), Length(max=10_000)])
    order_number = StringField(_l("Order number (optional)"), validators=[Optional(), Length(max=40)])
    files = MultipleFileField(_l("Attachments (images or PDF)"))
    submit = SubmitField(_l("Send"))


class ComplaintForm(FlaskForm):
    category = SelectField(_l("What went wrong?"), validators=[DataRequired()])
    description = TextAreaField(_l("Tell us what happened"), validators=[DataRequired(), Length(max=10_000)])
    remedy_sought = TextAreaField(_l("What would put it right?"), validators=[Optional(), Length(max=2000)])
    order_number = StringField(_l("Order number (optional)"), validators=[Optional(), Length(max=40)])
    files = MultipleFileField(_l("Evidence (images or PDF)"))
    submit = SubmitField(_l("Make a complaint"))


class ReplyForm(FlaskForm):
    body = TextAreaField(_l("Your reply"), validators=[DataRequired(), Length(max=10_000)])
    files = MultipleFileField(_l("Attachments (images or PDF)"))
    submit = SubmitField(_l("Send reply"))


class VoteForm(FlaskForm):
    helpful = HiddenField(validators=[DataRequired()])


class SurveyForm(FlaskForm):
    csat = RadioField(_l("How satisfied are you with how we handled your request?"),
                      choices=[SelectChoice(str(i), str(i)) for i in range(1, 6)], validators=[DataRequired()])
    comment = TextAreaField(_l("Anything you would like to tell us?"), validators=[Optional(), Length(max=2000)])
    nps = RadioField(_l("How likely are you to recommend us to a friend or colleague?"),
                     choices=[SelectChoice(str(i), str(i)) for i in range(0, 11)], validators=[Optional()])
    submit = SubmitField(_l("Send answers"))
