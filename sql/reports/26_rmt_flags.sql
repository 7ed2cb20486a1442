-- title: What the random-matrix flags say, layer by layer
-- shows: (submit --rmt) every matrix WeightWatcher's analyses flag, one row per flag with its meaning in words:
--        over-trained (alpha < 2), under-trained (alpha > 6), a failed fit, correlation traps, rank collapse, all-bulk (little
--        learned: mp_softrank ≥ 0.9), each with what it suggests. The readings of training (over-, under-trained, a
--        failed fit, mostly bulk) are for projections only: embeddings, position tables and the output head are looked
--        up, not trained as projections (looked_up() in views.sql, the rule of the findings and alpha flags).
-- draw: table
-- optional: true
-- needs: rmt_analysis
WITH d AS (SELECT *, looked_up(block_type) AS looked_up FROM weightwatcher_details
           WHERE list_contains($models, model_id)),
flags AS (
    SELECT model_id, matrix_key, 'over-trained' AS flag, 'alpha = ' || round(alpha, 2)
           || ' < 2: the tail is heavier than in well-trained layers — over-fit, or a learning rate too high' AS meaning
    FROM d WHERE warning = 'over-trained' AND status = 'success' AND NOT looked_up
    UNION ALL
    SELECT model_id, matrix_key, 'under-trained', 'alpha = ' || round(alpha, 2)
           || ' > 6: the ESD is nearly random — this layer learned little and could train longer'
    FROM d WHERE warning = 'under-trained' AND NOT looked_up
    UNION ALL
    SELECT model_id, matrix_key, 'fit failed', 'no power law could be fitted to the tail (WeightWatcher: alpha = -1)'
    FROM d WHERE status <> 'success' AND NOT looked_up
    UNION ALL
    SELECT model_id, matrix_key, 'correlation traps', num_traps
           || ' eigenvalue(s) of the shuffled matrix beyond the random bulk: a few very large weights (table above)'
    FROM d WHERE num_traps > 0
    UNION ALL
    SELECT model_id, matrix_key, 'rank collapse', rank_loss
           || ' singular values at numerical zero: the matrix has fewer independent directions than its shape'
    FROM d WHERE rank_loss > 0
    UNION ALL
    SELECT model_id, matrix_key, 'mostly bulk', 'mp_softrank = ' || round(mp_softrank, 3)
           || ' ≥ 0.9: the largest eigenvalue barely leaves the Marchenko–Pastur bulk — mostly noise'
    FROM d WHERE mp_softrank >= 0.9 AND NOT looked_up
)
SELECT * FROM flags
ORDER BY list_position($models, model_id), flag, matrix_key
LIMIT 200;
