-- title: Compressibility: 90 % energy rank ratio by layer and block type
-- shows: svd_90_percent_ratio averaged per (layer, block type); low values (dark) mark layers whose
--        energy sits in few directions — candidates for low-rank compression.
-- draw: heatmap x=block_type y=layer_index value=value facet=model_id label=svd_90_percent_ratio
SELECT model_id, layer_index, block_type, avg(svd_90_percent_ratio) AS value
FROM matrix_analysis
WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok' AND layer_index IS NOT NULL
GROUP BY ALL
ORDER BY model_id, layer_index, block_type;
