-- title: How much to prune each layer: AlphaPruning's sparsities
-- shows: per model, transformer layer and block type, the sparsity AlphaPruning gives a matrix for a 50 % mean
--        (ε = 0.2): its heavy-tail alpha mapped linearly into [1 − ε, 1 + ε] — more heavy-tailed (lower alpha),
--        better trained, pruned less — and scaled to a parameter-weighted mean of 50 % (view prune_plan;
--        `tpa-dist plan prune --sparsity S --epsilon E` writes the JSON for any S and E).
-- draw: heatmap x=block_type y=layer_index value=sparsity facet=model_id label=sparsity
SELECT model_id, layer_index, block_type, round(avg(sparsity), 3) AS sparsity
FROM prune_plan
WHERE list_contains($models, model_id)
GROUP BY model_id, layer_index, block_type
ORDER BY list_position($models, model_id), layer_index, block_rank(block_type);
