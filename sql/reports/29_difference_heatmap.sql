-- title: Differences from the first model: Δ 90 % energy rank ratio by block type and depth
-- shows: one heatmap per model after the first: its 90 % energy rank ratio minus the first model's, per block type
--        (columns) and relative depth (rows, tenths of layer / last layer); positive (red): less compressible
--        there, negative (blue): more; white: no change (a diverging scale centred on 0, the same reach both ways).
-- draw: heatmap x=block_type y=depth value=value facet=panel label=Δ_r90 center=0
-- optional: true
-- needs: models>1
SELECT model_b AS model_id, model_b || ' − ' || model_a AS panel, block_type, depth_from AS depth, d_r90 AS value
FROM compare_to_first($models)
WHERE d_r90 IS NOT NULL
ORDER BY list_position($models, model_b), block_rank(block_type), depth_from;
