-- append_delta_batch.sql — one ΔW batch whose pairs are not stored yet: plain INSERTs (see append_batch.sql; a pair
-- already there makes the store write the batch with insert_delta_batch.sql instead).
INSERT INTO delta_analysis BY NAME SELECT * FROM batch_deltas;
INSERT INTO delta_spectra BY NAME SELECT * FROM batch_delta_spectra;
