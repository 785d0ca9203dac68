"""drip: email courses written as Markdown files, sent on a schedule to each reader."""
