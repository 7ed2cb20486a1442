-- layer_summary.sql — the seed's console summary ("LAYER-BY-LAYER MATRIX ANALYSIS"): per model and layer,
-- one entry per block type (expert slices folded into one entry with their count and mean values); a matrix of no
-- known block type ('other', e.g. BERT's pooler.dense) shows under its own module name.
SELECT model_id, layer_index,
       CASE WHEN block_type = 'other' THEN regexp_replace(param_name, '\.weight$', '') ELSE block_type END AS block,
       count(*) AS n, any_value(shape) AS shape,
       round(avg(actual_rank)) AS actual_rank, any_value(design_rank) AS design_rank,
       round(avg(svd_90_percent_rank)) AS r90, avg(sparsity) AS sparsity, avg(mean) AS mean, avg(std) AS std,
       avg(alpha) AS alpha
FROM matrix_analysis
WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok'
GROUP BY model_id, layer_index, block_type, block
ORDER BY model_id, layer_index NULLS LAST,
         block_rank(block_type), block;
