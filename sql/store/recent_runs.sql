-- runs.sql — recent runs, newest first: status, the models asked for, counters, throughput per device, and for a
-- run that did not end ok its first recorded problem. Drawn as a table. analysis_s is the matrix phase, and the rates
-- are over it (as the submit's summary line); run_s is the whole run (every phase: start-up, planning, Ray, analysis,
-- embeddings, outputs).
SELECT run_id, started_at, status,
       array_to_string(from_json(config->'models', '["VARCHAR"]'), ', ') AS models,
       matrices_total AS total, matrices_done AS done, matrices_reused AS reused,
       matrices_failed AS failed, round((phases->>'analysis')::DOUBLE, 1) AS analysis_s,
       round(matrices_per_s, 2) AS mat_per_s,
       round(bytes_per_s / 1048576, 1) AS mib_per_s,
       round((SELECT sum(value::DOUBLE) FROM json_each(phases) WHERE key <> 'writing'), 1) AS run_s,
       (SELECT string_agg(key || ' ' || (value->>'matrices') || ' mat', ', ' ORDER BY key)
        FROM json_each(throughput)) AS devices,
       CASE WHEN status <> 'ok' THEN coalesce(nullif(regexp_extract(summary, '\n\s*- ([^\n]*)', 1), ''),
                                             CASE WHEN status = 'running' THEN NULL ELSE summary END) END AS problem
FROM runs
ORDER BY started_at DESC
LIMIT $limit;
