-- title: Layers flagged by alpha
-- shows: matrices WeightWatcher would flag: alpha < 2 (over-trained?) or alpha > 6 (under-trained?).
-- draw: table
SELECT model_id, matrix_key, block_type, round(alpha, 3) AS alpha, round(D, 3) AS ks_distance,
       num_pl_spikes, CASE WHEN alpha < 2 THEN 'over-trained?' ELSE 'under-trained?' END AS flag
FROM matrix_analysis
WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok' AND (alpha < 2 OR alpha > 6)
ORDER BY list_position($models, model_id), alpha, layer_index NULLS LAST, block_rank(block_type);
