"""drip.ops: stats, operators, roles and the audit log, sessions, monitoring."""
