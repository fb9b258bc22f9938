"""Which columns of customer data are personal (erased on request) and which are not (kept, so
statistics stay right). One declaration per table; tests/trust/test_privacy.py fails when a table
reachable from a customer has a text, JSON or binary column that is not declared here."""
from __future__ import annotations

from app.privacy import classify, hold_parent

# Identifier-only tables: their rows are removed on erasure.
for table in ("customer_phones", "customer_emails", "customer_accounts", "customer_contacts", "customer_tags",
              "portal_account_tokens", "email_undeliverable"):
    classify(table, delete_rows=True)

classify("customers", personal=("name", "organisation", "attributes"), keep=("kind", "language", "timezone", "tier"))
classify("orders", keep=("number", "status", "currency"))
classify("order_lines", keep=("sku", "description"))
classify("shipments", personal=("tracking_number",), keep=("carrier", "status"))
classify("customer_consents", keep=("purpose", "source"))
classify("customer_value_snapshots", keep=("tier", "segment", "stage", "loyalty", "churn_risk", "churn_signals",
                                           "peak_tier", "explanation"))
classify("customer_merges", personal=("merged_name",), keep=("moved", "actor"))
classify("customer_feedback", personal=("comment",), keep=("kind",))
# Interactions keep their routing facts (channel, queue, states, skills, disposition) for the KPIs; the
# event log's data holds routing facts (queue, agent) that the reports replay, so it is kept too.
classify("interactions", personal=("subject", "attributes", "notes", "recording_url"),
         keep=("channel", "direction", "state", "external_ref", "queue", "language", "priority_reasons",
               "required_skills", "disposition"))
classify("interaction_events", keep=("kind", "from_state", "to_state", "actor", "reason", "data"))
classify("voice_webhook_receipts", personal=("body",), keep=("call_sid", "event"))
classify("complaints", personal=("description", "remedy_sought", "evidence"),
         keep=("reference", "channel", "category", "root_cause", "currency", "language", "customer_tier", "level",
               "factor_scores", "grade_explanation", "state", "regulatory_profile", "deadlines"),
         lists=("evidence",))
classify("complaint_events", personal=("note", "data"), keep=("kind", "from_state", "to_state", "actor"))
classify("complaint_alerts", keep=("clock", "name"))
classify("complaint_notices", personal=("subject", "body", "data", "address", "last_error"),
         keep=("recipient_kind", "channel", "language", "kind", "status"))
classify("complaint_evidence", personal=("filename", "data", "sha256"), keep=("content_type",))
classify("complaint_approvals", personal=("note",), keep=("approval_role",))
classify("compensation_proposals", personal=("response_note", "adjustment_reason", "decided_note"),
         keep=("status", "currency", "level", "customer_tier", "method", "detail"))
classify("compensation_issuances", keep=("idempotency_key", "method", "currency", "voucher_code"))
classify("portal_attachments", personal=("filename", "data", "sha256"), keep=("content_type", "uploaded_by"))
classify("portal_emails", personal=("to_address", "subject", "body"), keep=("kind", "status"))
classify("portal_case_messages", personal=("body",), keep=("author",))
classify("chat_sessions", personal=("visitor_name", "visitor_email"),
         keep=("token_hash", "topic", "origin", "mode", "end_reason"))
classify("chat_messages", personal=("body",), keep=("sender", "client_id"))
classify("email_threads", personal=("customer_address", "cc", "subject"), keep=("mailbox",), lists=("cc",))
classify("email_messages", personal=("from_address", "from_name", "to", "cc", "recipient", "subject", "text_body",
                                     "html_body", "last_error", "details"),
         keep=("direction", "kind", "mailbox", "message_id", "in_reply_to", "references", "language", "status"),
         lists=("to", "cc"))
# The raw message an email of theirs was parsed from is theirs too (its bytes hold everything the parsed
# row does, attachments included); its bookkeeping stays so the intake's counts and de-duplication hold.
hold_parent("email_messages", "inbound_id")
classify("email_inbound", personal=("raw", "error", "source_ref"),
         keep=("mailbox", "message_key", "source", "raw_sha256", "status", "quarantine_reason"))
classify("email_attachments", personal=("filename", "content", "content_id", "mime_part"),
         keep=("content_type", "withheld"))
classify("routing_offers", keep=("status", "queue", "channel", "from_state", "priority_reasons", "trace", "cause"))
classify("routing_queue_entries", personal=("note",), keep=("queue",))
