"""Readers' replies: the signed Reply-To, the reply mailbox and webhooks, matching, the list."""
