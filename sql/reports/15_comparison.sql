-- title: Cross-model comparison by block type and relative depth
-- shows: the 90 % energy rank ratio against relative depth (layer / last layer); one panel per block type, one
--        colour per model — how the models differ layer by layer (needs two or more models); every block type with
--        layers in at least two of the models has its panel.
-- draw: lines x=depth y=value series=model_id facet=block_type color=model_id label=svd_90_percent_ratio
-- optional: true
-- needs: models>1
WITH m AS (
    SELECT model_id, block_type, svd_90_percent_ratio,
           round(layer_index / greatest(max(layer_index) OVER (PARTITION BY model_id), 1), 2) AS depth
    FROM matrix_analysis
    WHERE list_contains($models, model_id) AND kind = 'matrix' AND status = 'ok' AND layer_index IS NOT NULL
          AND NOT looked_up(block_type) AND block_type NOT IN ('norm', 'bias')
),
shared AS (SELECT block_type FROM m GROUP BY block_type HAVING count(DISTINCT model_id) > 1)
SELECT model_id, block_type, depth, avg(svd_90_percent_ratio) AS value
FROM m SEMI JOIN shared USING (block_type)
WHERE (SELECT count(DISTINCT model_id) FROM matrix_analysis WHERE list_contains($models, model_id)) > 1
GROUP BY model_id, block_type, depth
ORDER BY block_rank(block_type), model_id, depth;
