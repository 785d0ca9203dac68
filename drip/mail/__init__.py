"""A lesson into a message: render, links, clicks, outbox, transports, pace."""
