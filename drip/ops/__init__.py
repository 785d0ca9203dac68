"""What operators see: stats, a reader's timeline, operators, the audit log."""
