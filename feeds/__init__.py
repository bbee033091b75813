"""Ingestion: fetch, parse, classify and cluster news items. Knows nothing of Telegram, Slack or Redis."""
