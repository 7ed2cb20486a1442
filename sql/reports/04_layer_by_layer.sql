-- title: Layer-by-layer matrix analysis
-- shows: the seed's per-layer view: every matrix's shape, numerical rank, 90 % energy rank, sparsity,
--        mean and standard deviation, plus the power-law alpha (blocks in their in-layer order).
-- draw: table
SELECT model_id, layer_index AS layer, block_type AS block, matrix_key, shape,
       actual_rank || '/' || design_rank AS rank, round(rank_ratio, 3) AS rank_ratio,
       svd_90_percent_rank AS r90, round(svd_90_percent_ratio, 3) AS r90_ratio,
       round(sparsity, 4) AS sparsity, mean, std, round(alpha, 2) AS alpha
FROM matrix_analysis
WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok'
ORDER BY list_position($models, model_id), layer_index NULLS LAST, block_rank(block_type), expert_index NULLS FIRST,
         matrix_key;
