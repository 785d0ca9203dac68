"""Courses as files: sequences, authors, when lessons are due, lead magnets."""
