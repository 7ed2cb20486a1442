-- title: Parameters by block type
-- shows: the share (%) of each model's parameters in each block type, one column per model (block types in
--        their in-layer order).
-- draw: table pivot=model_id value=percent
SELECT block_type, model_id,
       round(100.0 * sum(numel) / sum(sum(numel)) OVER (PARTITION BY model_id), 2) AS percent
FROM tensors
WHERE list_contains($models, model_id)
GROUP BY model_id, block_type
ORDER BY block_rank(block_type), block_type, list_position($models, model_id);
