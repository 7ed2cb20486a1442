-- title: Summary by model
-- shows: one row per model: matrices analyzed, WeightWatcher's averages over its matrices (alpha, alpha_weighted,
--        log_norm, log_spectral_norm), the mean stable rank, the share of rank-deficient matrices, the mean
--        90 % energy rank ratio, and the embedding clustering (chosen k, its silhouette, and whether the
--        partition is degenerate); with submit --rmt, WeightWatcher's mean mp_softrank and the correlation traps.
-- draw: table
WITH m AS (
    SELECT model_id, count(*) AS matrices, count(*) FILTER (status = 'error') AS errors,
           avg(alpha) FILTER (status = 'ok') AS alpha, avg(alpha_weighted) FILTER (status = 'ok') AS alpha_weighted,
           avg(log_norm) FILTER (status = 'ok') AS log_norm,
           avg(log_spectral_norm) FILTER (status = 'ok') AS log_spectral_norm,
           avg(stable_rank) FILTER (status = 'ok') AS stable_rank,
           avg((actual_rank < design_rank)::INTEGER) FILTER (status = 'ok') AS rank_deficient_share,
           avg(svd_90_percent_ratio) FILTER (status = 'ok') AS r90_ratio
    FROM matrix_analysis
    WHERE list_contains($models, model_id) AND kind = 'matrix'
    GROUP BY model_id
), e AS (
    SELECT model_id, string_agg(chosen_k::VARCHAR, ', ' ORDER BY param_name) AS embedding_k,
           string_agg(round(silhouette, 3)::VARCHAR, ', ' ORDER BY param_name) AS silhouette,
           string_agg(CASE WHEN degenerate IS NULL THEN 'no' ELSE 'yes' END, ', ' ORDER BY param_name) AS degenerate
    FROM embedding_choice
    WHERE list_contains($models, model_id)
    GROUP BY model_id
), w AS (
    SELECT model_id, mp_softrank, num_traps
    FROM weightwatcher_summary
    WHERE list_contains($models, model_id)
    QUALIFY row_number() OVER (PARTITION BY model_id ORDER BY num_layers DESC, rmt_id) = 1
)
SELECT m.model_id, m.matrices, m.errors, round(m.alpha, 2) AS mean_alpha, round(m.alpha_weighted, 2) AS alpha_weighted,
       round(m.log_norm, 2) AS log_norm, round(m.log_spectral_norm, 2) AS log_spectral_norm,
       round(m.stable_rank, 1) AS stable_rank, round(100 * m.rank_deficient_share, 1) AS rank_deficient_pct,
       round(m.r90_ratio, 3) AS mean_r90_ratio, round(w.mp_softrank, 3) AS mp_softrank, w.num_traps,
       e.embedding_k, e.silhouette, e.degenerate
FROM m LEFT JOIN e USING (model_id) LEFT JOIN w USING (model_id)
ORDER BY list_position($models, m.model_id);
