-- title: Empirical spectral density with its power-law fit
-- shows: the eigenvalues λ = σ² of one matrix per model on log-log axes, with the fitted power law from xmin
--        (λ ≤ 1e-5 dropped, as in the fit); one panel per model, titled with the matrix's name — the same matrix in
--        every panel (esd_choice() in views.sql: chosen in the first model, found by name in the others).
-- draw: esd value=eigenvalue series=series alpha=alpha xmin=xmin facet=model_id
SELECT c.model_id, c.model_id || ': ' || c.matrix_key AS series, m.alpha, m.xmin,
       unnest(list_filter(list_transform(s.singular_values, lambda x: x * x), lambda x: x > 1e-5)) AS eigenvalue,
       CASE WHEN c.same_as_first THEN
            c.matrix_key || ' (every model that has it) — chosen in ' || c.chosen_in || ' as '
            || CASE WHEN c.block_type = 'down_proj' THEN 'the down projection nearest the middle layer'
                    ELSE 'the largest matrix nearest the middle layer (no down projection with a fit)' END
            || CASE WHEN c.full_rank THEN ', full rank' ELSE ' (every candidate is rank-deficient)' END
       ELSE c.model_id || ' has no ' || (SELECT matrix_key FROM esd_choice($models) WHERE same_as_first LIMIT 1)
            || ': its panel shows ' || c.matrix_key || ', chosen in it by the same rule' END
       || ' — one matrix per model keeps the panels readable; every alpha is in the alpha sections' AS caption
FROM esd_choice($models) c
JOIN matrix_analysis m USING (model_id, matrix_key)
JOIN spectra s USING (model_id, revision, settings_id, matrix_key)
ORDER BY list_position($models, c.model_id);
