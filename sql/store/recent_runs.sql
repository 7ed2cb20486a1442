-- runs.sql — recent runs, newest first: status, counters, throughput. Drawn as a table.
SELECT run_id, started_at, status, matrices_total AS total, matrices_done AS done, matrices_reused AS reused,
       matrices_failed AS failed, round(seconds, 1) AS seconds, round(matrices_per_s, 2) AS mat_per_s,
       round(bytes_per_s / 1048576, 1) AS mib_per_s, throughput
FROM runs
ORDER BY started_at DESC
LIMIT $limit;
