"""What pages show for the codes the CRM stores (tiers, channels, interaction states, order and
shipment statuses...), in the reader's language: the CRM's pages and the agent console's screen-pop."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l

LABELS = {
    "tier": {"vip": _l("VIP"), "major": _l("Major"), "ordinary": _l("Ordinary"), "small": _l("Small")},
    "kind": {"individual": _l("Individual consumer"), "business": _l("Business customer"),
             "distributor": _l("Distributor / reseller"), "internal": _l("Internal customer")},
    "channel": {"voice": _l("Phone"), "email": _l("Email"), "chat": _l("Chat"), "task": _l("Task"),
                "portal": _l("Portal"), "ivr": _l("IVR")},
    "state": {"new": _l("New"), "ivr": _l("In the IVR"), "queued": _l("Queued"), "offered": _l("Offered"),
              "connected": _l("Connected"), "wrap_up": _l("Wrap-up"), "closed": _l("Closed"),
              "abandoned": _l("Abandoned"), "voicemail": _l("Voicemail"),
              "callback_pending": _l("Callback pending")},
    "consent": {"calls": _l("Calls"), "email": _l("Email"), "sms": _l("Text messages"),
                "marketing": _l("Marketing"), "recording": _l("Call recording")},
    "matched": {"name": _l("name"), "phone": _l("phone"), "email": _l("email"), "order": _l("order number")},
    "feedback": {"csat": _l("Satisfaction (CSAT)"), "nps": _l("Would recommend (NPS)")},
    "run": {"queued": _l("queued"), "running": _l("running"), "done": _l("done"), "failed": _l("failed")},
    "status": {"placed": _l("placed"), "paid": _l("paid"), "shipped": _l("shipped"), "delivered": _l("delivered"),
               "cancelled": _l("cancelled"), "returned": _l("returned"), "refunded": _l("refunded"),
               "in_transit": _l("in transit"), "out_for_delivery": _l("out for delivery"),
               "exception": _l("delivery problem"), "lost": _l("lost")},
    "churn": {"none": _l("None"), "low": _l("Low"), "medium": _l("Medium"), "high": _l("High")},
}
