"""Blueprints: thin handlers over the plain functions in drip/."""
