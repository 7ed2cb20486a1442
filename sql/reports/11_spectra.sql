-- title: Singular-value spectra of chosen matrices
-- shows: log-log spectra of the token embedding and of the first and middle layers' q_proj and down_proj.
-- draw: loglog x=k y=sigma series=series
WITH chosen AS (
    SELECT s.model_id, s.matrix_key, s.singular_values, m.layer_index, m.block_type,
           max(m.layer_index) OVER (PARTITION BY s.model_id) AS last_layer
    FROM spectra s JOIN matrix_analysis m USING (model_id, revision, settings_id, matrix_key)
    WHERE list_contains($models, s.model_id) AND m.block_type IN ('embedding', 'q_proj', 'qkv_proj', 'down_proj')
)
SELECT model_id || ' ' || matrix_key AS series, generate_subscripts(singular_values, 1) AS k,
       unnest(singular_values) AS sigma
FROM chosen
WHERE block_type = 'embedding' OR layer_index = 0 OR layer_index = last_layer // 2;
