-- append_batch.sql — one result batch whose matrices are not stored yet (the common case): plain INSERTs, no upsert.
-- A key already there (a --force run, a matrix whose earlier row is replaced) fails it with a constraint error: the
-- store rolls the transaction back and writes the batch with insert_batch.sql (INSERT OR REPLACE) instead.
INSERT INTO matrix_analysis BY NAME SELECT * FROM batch_rows;
INSERT INTO spectra BY NAME SELECT * FROM batch_spectra;
