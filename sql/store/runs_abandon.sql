-- runs_abandon.sql — runs still marked 'running' when a new writer opens the database had their driver die
-- (DuckDB admits one writer process, so no other run can be live): mark them 'abandoned'.
UPDATE runs SET status = 'abandoned', finished_at = coalesce(finished_at, current_timestamp)
WHERE status = 'running';
