"""Everything that drives Debian's Chromium through Playwright (marker `browser`)."""
