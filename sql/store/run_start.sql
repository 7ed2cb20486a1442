-- run_start.sql — register a run as it starts.
INSERT INTO runs (run_id, argv, config, versions, host, started_at, status)
VALUES ($run_id, $argv, $config, $versions, $host, current_timestamp, 'running');
