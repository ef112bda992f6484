"""Delivery of the outbox: channels (webhook, DingTalk, WeCom, SMTP), their configuration,
message templates, and the dispatcher that the daemon runs beside the sweep."""
