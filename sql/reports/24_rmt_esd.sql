-- title: Empirical spectral density against random-matrix theory
-- shows: (submit --rmt) per model the matrix of 12's choice with its ESD, the power-law fit of its tail, and the
--        Marchenko–Pastur density fitted to its bulk with the bulk edge λ+: eigenvalues beyond λ+ are the
--        correlations training put in (num_spikes); a layer whose ESD is all bulk (mp_softrank near 1) holds
--        little beyond noise.
-- draw: esd value=eigenvalue series=series alpha=alpha xmin=xmin facet=model_id bulk_max=bulk_max q=Q
-- optional: true
WITH ranked AS (
    SELECT m.model_id, m.matrix_key, m.alpha, m.xmin, r.bulk_max, r.Q, r.num_spikes, r.mp_softrank,
           s.singular_values,
           row_number() OVER (PARTITION BY m.model_id ORDER BY (m.actual_rank = m.design_rank) DESC,
                              (m.block_type = 'down_proj') DESC,
                              abs(m.layer_index - (SELECT max(layer_index) FROM matrix_analysis x
                                                   WHERE x.model_id = m.model_id) / 2), m.numel DESC) AS rn
    FROM matrix_analysis m
    JOIN spectra s USING (model_id, revision, settings_id, matrix_key)
    JOIN rmt_analysis r USING (model_id, revision, settings_id, matrix_key)
    WHERE list_contains($models, m.model_id) AND m.alpha IS NOT NULL AND m.layer_index IS NOT NULL
      AND r.bulk_max IS NOT NULL
)
SELECT model_id, model_id || ': ' || matrix_key AS series, alpha, xmin, bulk_max, Q,
       unnest(list_filter(list_transform(singular_values, lambda x: x * x), lambda x: x > 1e-5)) AS eigenvalue,
       model_id || ': ' || matrix_key || ' — ' || num_spikes || ' eigenvalues beyond the bulk edge, mp_softrank '
       || round(mp_softrank, 3) AS caption
FROM ranked WHERE rn = 1;
