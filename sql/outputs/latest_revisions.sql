-- latest_revisions.sql — each model's latest revision: the one the most recent run that planned it recorded. Reports
-- and the console show these only (unless asked for every revision): a checkpoint edited in place is a new
-- revision, and its old rows stay stored beside the new ones.
SELECT m.model_id, arg_max(m.revision, coalesce(r.started_at, TIMESTAMP '1970-01-01')) AS revision
FROM models m LEFT JOIN runs r ON r.run_id = m.run_id
WHERE m.status = 'ok'
GROUP BY m.model_id;
