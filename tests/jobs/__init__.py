"""drip.jobs: the worker and `drip serve` as processes, lead-magnet builds."""
