"""The operators' pages: dashboard, readers, deliveries, broadcasts, segments."""
