"""drip.integrations: outgoing webhooks and where they may connect."""
