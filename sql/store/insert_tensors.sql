-- insert_tensors.sql — every tensor of one model (Arrow table registered as batch_tensors).
INSERT OR REPLACE INTO tensors BY NAME SELECT * FROM batch_tensors;
