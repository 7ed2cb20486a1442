-- insert_batch.sql — one result batch (Arrow tables registered as batch_rows and batch_spectra).
-- Run inside one transaction by the store: a batch is either wholly stored or not at all.
INSERT OR REPLACE INTO matrix_analysis BY NAME SELECT * FROM batch_rows;
INSERT OR REPLACE INTO spectra BY NAME SELECT * FROM batch_spectra;
