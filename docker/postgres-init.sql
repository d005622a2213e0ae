-- Prefect's migrations index flow-run names with trigrams; the postgres image runs this once, on a new volume.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
