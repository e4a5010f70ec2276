"""The tamper-evident audit trail: append-only rows, chained by SHA-256, read as AuditEvent."""
