"""What keeps mail welcome: bounces, providers, mailbox, guardrails."""
