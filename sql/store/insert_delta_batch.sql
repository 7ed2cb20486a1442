-- insert_delta_batch.sql — one batch of ΔW results (Arrow tables batch_deltas and batch_delta_spectra), stored in
-- one transaction by the store.
INSERT OR REPLACE INTO delta_analysis BY NAME SELECT * FROM batch_deltas;
INSERT OR REPLACE INTO delta_spectra BY NAME SELECT * FROM batch_delta_spectra;
