"""The reader's pages: home, sign-up, confirm, unsubscribe, downloads."""
