"""drip.core: settings, the secret key and its fallbacks, private files, YAML input."""
