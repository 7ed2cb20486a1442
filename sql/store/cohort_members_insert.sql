-- cohort_members_insert.sql — the members of one listing, from the registered Arrow table cohort_rows.
INSERT OR REPLACE INTO cohort_members
SELECT $name, $listed_at, position, spec, model_id, revision, downloads, gated FROM cohort_rows;
