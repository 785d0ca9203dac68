"""Course files edited in the browser: checked saves, YAML, git, lint, photos."""
