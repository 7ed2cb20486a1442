-- title: Which layers moved: relative update by layer
-- shows: ‖ΔW‖_F / ‖W_base‖_F of each layer (averaged over its matrices of a block type) against the layer, one
--        panel per block type, one line per tuned model (for checkpoints with --base previous: each step against
--        the one before it).
-- draw: lines x=layer_index y=value series=pair facet=block_type color=model_id label=relative_update
-- optional: true
-- needs: delta_analysis
SELECT model_id, model_id || ' vs ' || base_model_id AS pair, block_type, layer_index, avg(relative_update) AS value
FROM delta_analysis
WHERE list_contains($models, model_id) AND status = 'ok' AND layer_index IS NOT NULL
GROUP BY model_id, base_model_id, block_type, layer_index
ORDER BY block_rank(block_type), pair, layer_index;
