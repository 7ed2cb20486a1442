-- title: Summary by model
-- shows: one row per model: matrices analyzed, WeightWatcher's averages over its matrices (alpha, alpha_weighted,
--        log_norm, log_spectral_norm), the mean stable rank, the share of rank-deficient matrices, the mean
--        90 % energy rank ratio, the embedding's clusters by the gap statistic's verdict (k clusters, one cloud, or
--        no preferred number; with the share of subsamples agreeing), what shapes it (mean cosine between tokens,
--        the top principal component's share of the variance), and the seed's argmax-F k with its degenerate flag;
--        with submit --rmt, WeightWatcher's mean mp_softrank and the correlation traps.
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
    SELECT c.model_id,
           string_agg(CASE c.verdict
                          WHEN 'clusters' THEN c.recommended_k || ' clusters (' || g.chosen || ' of ' || c.gap_subsamples
                                               || ' subsamples agree)'
                          WHEN 'one cloud' THEN 'none: one cloud'
                          WHEN 'no preferred number' THEN 'no preferred number (structure at every scale)'
                          ELSE coalesce(c.recommended_k::VARCHAR, '') END, '; ' ORDER BY c.param_name)
               AS embedding_clusters,
           string_agg('mean cosine ' || round(geo.mean_cosine, 3) || ', top PC ' || round(100 * geo.top_pc_share, 1)
                      || ' %', '; ' ORDER BY c.param_name) AS embedding_shape,
           string_agg(c.chosen_k || CASE WHEN c.degenerate IS NULL THEN '' ELSE ' (degenerate)' END, ', '
                      ORDER BY c.param_name) AS max_f_k
    FROM embedding_choice c
    LEFT JOIN embedding_gap g ON g.model_id = c.model_id AND g.revision = c.revision
                             AND g.param_name = c.param_name AND g.k = c.recommended_k
    LEFT JOIN embedding_geometry geo ON geo.model_id = c.model_id AND geo.revision = c.revision
                                    AND geo.param_name = c.param_name
    WHERE list_contains($models, c.model_id)
    GROUP BY c.model_id
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
       e.embedding_clusters, e.embedding_shape, e.max_f_k
FROM m LEFT JOIN e USING (model_id) LEFT JOIN w USING (model_id)
ORDER BY list_position($models, m.model_id);
