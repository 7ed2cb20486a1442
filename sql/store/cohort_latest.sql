-- cohort_latest.sql — the latest stored listing of the cohort $name, its members in order (no rows: none stored).
WITH latest AS (SELECT name, max(listed_at) AS listed_at FROM cohorts WHERE name = $name GROUP BY name)
SELECT c.source, c.query, c.listed_at, m.spec, m.model_id, m.revision, m.downloads, m.gated
FROM latest
JOIN cohorts AS c USING (name, listed_at)
JOIN cohort_members AS m USING (name, listed_at)
ORDER BY m.position;
