"""The four real courses under sequences/: walked through, in our own words."""
