-- title: Layers flagged by alpha
-- shows: projections WeightWatcher would flag: alpha < 2 (over-trained?) or alpha > 6 (under-trained?); embeddings,
--        position tables and the output head are looked up, not trained as projections, and are not read this way
--        (looked_up() in views.sql, the rule of the findings too).
-- draw: table
SELECT model_id, matrix_key, block_type, round(alpha, 3) AS alpha, round(D, 3) AS ks_distance,
       num_pl_spikes, CASE WHEN alpha < 2 THEN 'over-trained?' ELSE 'under-trained?' END AS flag
FROM matrix_analysis
WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok' AND (alpha < 2 OR alpha > 6)
      AND NOT looked_up(block_type)
ORDER BY list_position($models, model_id), alpha, layer_index NULLS LAST, block_rank(block_type);
