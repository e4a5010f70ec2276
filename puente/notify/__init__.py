"""The notification outbox: messages queued inside a transaction, delivered after it."""
