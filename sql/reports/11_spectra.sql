-- title: Singular-value spectra by role, every model in every panel
-- shows: log-log singular values σ_k against k for the token embedding and for the first and middle layers'
--        query (or fused qkv) and down projections; one panel per role, one colour per model (the first 16 models).
-- draw: loglog x=sv_index y=sigma series=series facet=role color=model_id label=singular_value
WITH chosen AS (
    SELECT s.model_id, s.matrix_key, s.singular_values, m.layer_index, m.block_type,
           max(m.layer_index) OVER (PARTITION BY s.model_id) AS last_layer
    FROM spectra s JOIN matrix_analysis m USING (model_id, revision, settings_id, matrix_key)
    WHERE list_contains($models[1:16], s.model_id) AND m.block_type IN ('embedding', 'q_proj', 'qkv_proj', 'down_proj')
          AND m.expert_index IS NULL
), roles AS (
    SELECT *, CASE WHEN block_type = 'embedding' THEN 'token embedding'
                   WHEN layer_index = 0 THEN 'layer 0 ' || replace(block_type, 'qkv_proj', 'q_proj')
                   ELSE 'middle layer ' || replace(block_type, 'qkv_proj', 'q_proj') END AS role
    FROM chosen
    WHERE block_type = 'embedding' OR layer_index = 0 OR layer_index = last_layer // 2
)
SELECT role, model_id, model_id || ' ' || matrix_key AS series, generate_subscripts(singular_values, 1) AS sv_index,
       unnest(singular_values) AS sigma,
       CASE WHEN len($models) > 16 THEN 'The figure shows the first 16 of ' || len($models)
                                        || ' models (tpa-dist report --models A,B,… chooses which).' END AS caption
FROM roles
ORDER BY list_position($models, model_id), role, series, sv_index;
