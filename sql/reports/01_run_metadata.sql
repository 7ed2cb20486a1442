-- title: Run metadata and environment
-- shows: the runs that analyzed these models: when, on which host, with which versions, how fast.
-- draw: table
SELECT r.run_id, r.started_at, r.status, r.host, r.matrices_total AS total, r.matrices_done AS computed,
       r.matrices_reused AS reused, r.matrices_failed AS failed, round(r.seconds, 1) AS seconds,
       round(r.matrices_per_s, 2) AS mat_per_s, r.versions
FROM runs r
WHERE r.run_id IN (SELECT DISTINCT run_id FROM matrix_analysis WHERE list_contains($models, model_id))
ORDER BY r.started_at;
