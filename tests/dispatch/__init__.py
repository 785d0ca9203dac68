"""drip.dispatch: the pass, claims and leases, faults, broadcasts, chaining."""
