"""drip.mail: rendering, headers, links and clicks, Message-IDs, transports, pace."""
