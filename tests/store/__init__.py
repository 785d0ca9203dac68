"""drip.store: migrations against the models, what SQLite stores and reads back."""
