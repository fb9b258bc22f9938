"""The email channel: monitored mailboxes in, threaded cases, acknowledgements, agent replies out.

Data flow: raw bytes are stored first (``ingest.store_raw``), then parsed, threaded and routed
(``ingest.process_inbound``); anything that cannot be understood stays in the quarantine, never dropped.
Pure rule modules (no I/O): ``charsets``, ``parse``, ``threads``, ``autoreply``, ``bounces``, ``sanitize``.
"""
