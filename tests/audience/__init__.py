"""drip.audience: sign-up intake, confirmation, tags, segments, imports."""
