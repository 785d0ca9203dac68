"""Readers from sign-up to leaving: intake, subscriptions, tags, segments."""
