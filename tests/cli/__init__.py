"""drip.cli: the `drip` command and the content owners' tools."""
