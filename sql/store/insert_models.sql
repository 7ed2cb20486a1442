-- insert_models.sql — models planned together (Arrow table registered as batch_models), each replacing the row of
-- the same model and revision; the columns of upsert_model.sql, by name.
INSERT OR REPLACE INTO models BY NAME SELECT * FROM batch_models;
