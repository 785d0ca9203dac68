"""drip.web over HTTP: public pages, the admin, the APIs, hostile clients."""
