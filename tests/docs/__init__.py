"""The documentation under docs/ keeps up with the code."""
