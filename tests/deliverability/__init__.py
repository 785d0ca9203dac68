"""drip.deliverability: bounces, providers' hooks, guardrails, spam score."""
