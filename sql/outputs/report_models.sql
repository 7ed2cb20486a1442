-- report_models.sql — the models a report of the whole database shows: every analyzed model with stored results
-- (matrices, or ΔW for an adapter), in the order they were first analyzed (the start of the earliest run that stored
-- their rows, then the model id), so that the first model — the one the others are compared with — stays first as
-- later submits add models; first_run: the run that first stored them (a submit puts its new models in its job's
-- order).
WITH stored AS (
    SELECT model_id, run_id FROM matrix_analysis
    UNION ALL
    SELECT model_id, run_id FROM delta_analysis
)
SELECT s.model_id, arg_min(s.run_id, coalesce(r.started_at, TIMESTAMP '9999-01-01')) AS first_run
FROM stored s LEFT JOIN runs r USING (run_id)
WHERE s.model_id IN (SELECT model_id FROM models WHERE status = 'ok')
GROUP BY s.model_id
ORDER BY min(r.started_at) NULLS LAST, s.model_id;
