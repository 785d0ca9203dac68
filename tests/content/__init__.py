"""drip.content: courses as files, `drip check`, authors, lead magnets, plans."""
