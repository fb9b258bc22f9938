"""Typed CRM errors, each with a stable code and an English and Chinese message for whoever sees it."""
from __future__ import annotations


class CrmError(Exception):
    code = "crm_error"

    def __init__(self, en: str, zh: str, **details):
        self.en = en
        self.zh = zh
        self.details = details
        super().__init__(en)

    def to_dict(self) -> dict:
        return {"error": self.code, "message": self.en, "message_zh": self.zh, **self.details}


class CustomerNotFound(CrmError):
    code = "customer_not_found"

    def __init__(self, customer_id: int):
        super().__init__(f"customer {customer_id} does not exist", f"客户 {customer_id} 不存在",
                         customer_id=customer_id)


class OrderNotFound(CrmError):
    code = "order_not_found"

    def __init__(self, number: str):
        super().__init__(f"order {number!r} does not exist", f"订单 {number!r} 不存在", number=number)


class DuplicateOrder(CrmError):
    code = "duplicate_order"

    def __init__(self, number: str):
        super().__init__(f"order number {number!r} is already used", f"订单号 {number!r} 已被使用", number=number)


class MergeConflict(CrmError):
    code = "merge_conflict"


class InvalidAttributes(CrmError):
    """Custom attribute values that do not match config.yaml ``crm.custom_attributes``."""

    code = "invalid_attributes"

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        listed = "; ".join(f"{k}: {v}" for k, v in problems.items())
        super().__init__(f"invalid custom attributes: {listed}", f"自定义属性无效：{listed}", problems=problems)
