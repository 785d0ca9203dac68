"""Work in the background: the worker's schedule and lead-magnet builds."""
