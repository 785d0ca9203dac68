"""What every package stands on: settings, clock, private files, logs, paths."""
