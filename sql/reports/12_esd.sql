-- title: Empirical spectral density with its power-law fit
-- shows: the eigenvalues λ = σ² of one matrix per model on log-log axes, with the fitted power law from xmin
--        (λ ≤ 1e-5 dropped, as in the fit); one panel per model.
-- draw: esd value=eigenvalue series=series alpha=alpha xmin=xmin facet=model_id
WITH ranked AS (
    SELECT m.model_id, m.matrix_key, m.block_type, m.layer_index, m.alpha, m.xmin, s.singular_values,
           m.actual_rank = m.design_rank AS full_rank,
           row_number() OVER (PARTITION BY m.model_id ORDER BY (m.actual_rank = m.design_rank) DESC,
                              (m.block_type = 'down_proj') DESC,
                              abs(m.layer_index - (SELECT max(layer_index) FROM matrix_analysis x
                                                   WHERE x.model_id = m.model_id) / 2), m.numel DESC) AS rn
    FROM matrix_analysis m JOIN spectra s USING (model_id, revision, settings_id, matrix_key)
    WHERE list_contains($models, m.model_id) AND m.alpha IS NOT NULL AND m.layer_index IS NOT NULL
)
SELECT model_id, model_id || ': ' || matrix_key AS series, alpha, xmin,
       unnest(list_filter(list_transform(singular_values, lambda x: x * x), lambda x: x > 1e-5)) AS eigenvalue,
       model_id || ': ' || matrix_key || ' — chosen as ' ||
       CASE WHEN block_type = 'down_proj' THEN 'the down projection nearest the middle layer'
            ELSE 'the largest matrix nearest the middle layer (no down projection with a fit)' END ||
       CASE WHEN full_rank THEN ', full rank' ELSE ' (every candidate is rank-deficient)' END ||
       ' — one matrix per model keeps the panels readable; every alpha is in the alpha sections' AS caption
FROM ranked WHERE rn = 1;
