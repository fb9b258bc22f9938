"""Routing persistence: offers, agent presence and queue membership stored in the database.

Owned by helper A2 (routing persistence). Helper A: the pure engine stays yours; extend, don't replace.
"""
