"""The database: engine, typed models, named queries, rollups, jobs, migrations."""
