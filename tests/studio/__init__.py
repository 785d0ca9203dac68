"""drip.studio: checked saves of course files, git history, test sends."""
