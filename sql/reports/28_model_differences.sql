-- title: How each model differs from the first, by block type and depth
-- shows: every model after the first against the first (Δ = model − first), matched by block type and relative
--        depth (tenths of layer / last layer): Δalpha, Δ 90 % energy rank ratio and Δ stable rank, the 40 largest
--        |Δr90| first, with each model's layers there (`tpa-dist compare A B` for one pair, every row).
-- draw: table
-- optional: true
-- needs: models>1
SELECT model_b AS model, model_a AS against, block_type, depth_from, depth_to, layers_a, layers_b,
       round(d_alpha, 3) AS d_alpha, round(d_r90, 3) AS d_r90, round(d_stable_rank, 2) AS d_stable_rank
FROM compare_to_first($models)
ORDER BY abs(d_r90) DESC NULLS LAST
LIMIT 40;
