-- title: Empirical spectral density against random-matrix theory
-- shows: (submit --rmt) per model the matrix of 12's choice (the same matrix in every panel) with its ESD, the power-law fit of its tail, and the
--        Marchenko–Pastur density fitted to its bulk with the bulk edge λ+: eigenvalues beyond λ+ are the
--        correlations training put in (num_spikes); a layer whose ESD is all bulk (mp_softrank near 1) holds
--        little beyond noise.
-- draw: esd value=eigenvalue series=series alpha=alpha xmin=xmin facet=model_id bulk_max=bulk_max q=Q
-- optional: true
-- needs: rmt_analysis
SELECT c.model_id, c.model_id || ': ' || c.matrix_key AS series, m.alpha, m.xmin, r.bulk_max, r.Q,
       unnest(list_filter(list_transform(s.singular_values, lambda x: x * x), lambda x: x > 1e-5)) AS eigenvalue,
       c.model_id || ': ' || c.matrix_key || ' — ' || r.num_spikes || ' eigenvalues beyond the bulk edge, mp_softrank '
       || round(r.mp_softrank, 3) AS caption
FROM esd_choice($models) c
JOIN matrix_analysis m USING (model_id, matrix_key)
JOIN spectra s USING (model_id, revision, settings_id, matrix_key)
JOIN rmt_analysis r USING (model_id, revision, settings_id, matrix_key)
WHERE r.bulk_max IS NOT NULL
ORDER BY list_position($models, c.model_id);
