"""The Jinja templates of pages and emails, installed as the package `drip.templates`."""
