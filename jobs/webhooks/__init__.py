"""Webhooks: signed notifications of a job's events, delivered by a worker of their own.

addresses: which URLs a webhook may go to (no SSRF) · signing: Standard Webhooks headers ·
transport: one HTTP attempt · outbox: events become deliveries, deliveries are attempted
(a few of each user's at a time), retried on a schedule and recorded.
"""
