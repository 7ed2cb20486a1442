-- seed_csv.sql — rows of transformer_matrix_analysis (the seed's CSV columns and order) for the given
-- models, keys as 'model_id@revision'; numeric layer order, non-layer rows last.
SELECT * FROM transformer_matrix_analysis
WHERE list_contains($keys, model_id || '@' || revision);
