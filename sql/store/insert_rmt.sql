-- insert_rmt.sql — the --rmt rows of one result batch (Arrow tables batch_rmt and batch_traps), inside the
-- batch's transaction: a matrix's traps are replaced whole, never mixed with an earlier run's.
INSERT OR REPLACE INTO rmt_analysis BY NAME SELECT * FROM batch_rmt;
DELETE FROM rmt_traps t
WHERE EXISTS (
    SELECT 1 FROM batch_rmt b
    WHERE b.model_id = t.model_id AND b.revision = t.revision AND b.settings_id = t.settings_id
      AND b.rmt_id = t.rmt_id AND b.matrix_key = t.matrix_key
);
INSERT INTO rmt_traps BY NAME SELECT * FROM batch_traps;
