-- title: Rank-deficient matrices
-- shows: matrices whose numerical rank is below min(rows, cols) — dead directions, zero or tied weights.
-- draw: table
SELECT model_id, matrix_key, block_type, shape, actual_rank, design_rank,
       design_rank - actual_rank AS missing, round(sparsity, 4) AS sparsity
FROM matrix_analysis
WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok' AND actual_rank < design_rank
ORDER BY list_position($models, model_id), missing DESC, layer_index NULLS LAST, block_rank(block_type), matrix_key;
