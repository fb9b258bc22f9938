"""What the desk tells customers and staff about a complaint, in English and Simplified Chinese (pure).

Each function returns (subject, body) in the requested language; dates arrive already formatted in
the reader's local time.
"""
from __future__ import annotations

from app.complaints.compensation import format_money

METHOD_TEXT = {
    "voucher": ("a voucher", "优惠券"), "account_credit": ("a credit to your account", "账户余额"),
    "refund": ("a refund to your original payment method", "原路退款"),
}


def acknowledgement(language: str, *, name: str, reference: str, resolve_by: str, acknowledge_note: str = ""
                    ) -> tuple[str, str]:
    if language == "zh":
        return (f"我们已收到您的投诉（编号 {reference}）",
                (f"{name}，您好：\n\n感谢您告诉我们。您的投诉已登记，编号为 {reference}。"
                f"我们将在 {resolve_by} 前给您最终答复。{acknowledge_note}\n\n如需补充信息，请回复本消息并注明编号。"))
    return (f"We have received your complaint ({reference})",
            (f"Dear {name},\n\nThank you for telling us. Your complaint is registered as {reference}. "
            f"We will give you our final response by {resolve_by}. {acknowledge_note}\n\n"
            "To add anything, reply to this message quoting the reference."))


def rejection(language: str, *, name: str, reference: str, reasons: str, escalate_within_days: int
              ) -> tuple[str, str]:
    if language == "zh":
        return (f"关于您的投诉 {reference} 的最终答复",
                (f"{name}，您好：\n\n经过调查，我们无法支持您的投诉 {reference}。理由如下：\n{reasons}\n\n"
                f"如您不同意，可在 {escalate_within_days} 天内回复要求复核，也有权向相关监管部门或消费者协会投诉。"))
    return (f"Our final response to your complaint {reference}",
            (f"Dear {name},\n\nAfter investigating, we cannot uphold your complaint {reference}, for these reasons:\n"
            f"{reasons}\n\nIf you disagree you may ask us to review it within {escalate_within_days} days, and you "
            "have the right to refer it to the relevant regulator or ombudsman."))


def resolution(language: str, *, name: str, reference: str, note: str) -> tuple[str, str]:
    if language == "zh":
        return (f"您的投诉 {reference} 已解决", f"{name}，您好：\n\n您的投诉 {reference} 已处理完毕。\n{note}")
    return (f"Your complaint {reference} is resolved",
            f"Dear {name},\n\nYour complaint {reference} is resolved.\n{note}")


def issuance(language: str, *, name: str, reference: str, amount_cents: int, currency: str, method: str,
             voucher_code: str | None) -> tuple[str, str]:
    money = format_money(amount_cents, currency)
    method_en, method_zh = METHOD_TEXT[method]
    if language == "zh":
        code = f"券码：{voucher_code}。" if voucher_code else ""
        return (f"投诉 {reference} 的补偿已发放",
                f"{name}，您好：\n\n我们已通过{method_zh}向您发放补偿 {money}。{code}再次为给您带来的不便致歉。")
    code = f" Your voucher code is {voucher_code}." if voucher_code else ""
    return (f"Compensation for your complaint {reference}",
            (f"Dear {name},\n\nWe have issued {money} to you as {method_en}.{code} "
            "We are sorry again for what happened."))


def survey(language: str, *, name: str, reference: str, survey_url: str) -> tuple[str, str]:
    if language == "zh":
        return ("请评价我们对您投诉的处理",
                f"{name}，您好：\n\n您的投诉 {reference} 已关闭。请花一分钟告诉我们您对处理过程是否满意：{survey_url}")
    return ("How did we handle your complaint?",
            (f"Dear {name},\n\nYour complaint {reference} is now closed. Please take a minute to tell us how "
            f"satisfied you are with how we handled it: {survey_url}"))


def sla_alert(language: str, *, reference: str, level: str, clock: str, name: str, due: str) -> tuple[str, str]:
    if language == "zh":
        clock_zh = "确认受理" if clock == "acknowledge" else "解决"
        what = "已超时" if name == "breach" else f"已用去 {name} 时限"
        return (f"[{level}] 投诉 {reference} {clock_zh}{what}",
                f"投诉 {reference}（{level}）的{clock_zh}期限为 {due}，{what}。请尽快处理。")
    clock_en = "acknowledgement" if clock == "acknowledge" else "resolution"
    what = "is overdue" if name == "breach" else f"has used {name} of its time"
    return (f"[{level}] Complaint {reference}: {clock_en} {what}",
            f"The {clock_en} deadline of complaint {reference} ({level}) is {due}; it {what}. Please act now.")


def status_update(language: str, *, name: str, reference: str, state: str, resolve_by: str) -> tuple[str, str]:
    """A change the customer should hear about between acknowledgement and final response: the
    investigation has started, or the complaint was reopened (its clock restarted)."""
    if language == "zh":
        what = "已重新打开，我们会再次调查" if state == "reopened" else "正在调查中"
        return (f"您的投诉 {reference} {what}",
                f"{name}，您好：\n\n您的投诉 {reference} {what}。我们将在 {resolve_by} 前给您最终答复。")
    what = "has been reopened and we are looking into it again" if state == "reopened" else \
        "is now being investigated"
    return (f"Your complaint {reference} {what}",
            f"Dear {name},\n\nYour complaint {reference} {what}. We will give you our final response by {resolve_by}.")
