-- title: Heavy-tail exponent alpha by layer and block type
-- shows: the power-law alpha of each (layer, block type), averaged over experts; WeightWatcher reads
--        alpha < 2 as over-trained and alpha > 6 as under-trained.
-- draw: heatmap x=block_type y=layer_index value=value facet=model_id label=alpha
SELECT model_id, layer_index, block_type, avg(alpha) AS value
FROM matrix_analysis
WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok' AND layer_index IS NOT NULL
      AND alpha IS NOT NULL
GROUP BY ALL
ORDER BY model_id, layer_index, block_type;
