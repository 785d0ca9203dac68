"""The shape of the code (imports, no cycles) and the wheel built from it."""
