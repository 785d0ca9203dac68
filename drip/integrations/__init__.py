"""Other tools talking to drip: API keys and outgoing webhooks."""
