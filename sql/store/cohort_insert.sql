-- cohort_insert.sql — one listing of a cohort (its members: cohort_members_insert.sql, in the same transaction).
INSERT OR REPLACE INTO cohorts VALUES ($name, $listed_at, $source, $query, $members, $run_id);
