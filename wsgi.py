"""For gunicorn: `gunicorn wsgi:app`. The schedule runs in `drip worker`, not here."""

from drip.app import create_app

app = create_app()
