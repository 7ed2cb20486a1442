-- title: How many clusters the embedding has: the gap statistic's verdict
-- shows: per embedding, the verdict of the gap statistic (Tibshirani et al. 2001, against one Gaussian cloud of the
--        rows' own shape), averaged over row subsamples so that it does not move with the seed: "k clusters", "one
--        cloud" or "no preferred number" (the gap still rises at the end of the range: structure at every scale, no
--        k stands out); per k the mean gap, its standard error over the subsamples and how many subsamples' own
--        2001 rule chose it — one subsample's rule alone is the seed-dependent answer this replaces.
-- draw: table
-- needs: embedding_gap
SELECT g.model_id, g.param_name, g.k, round(g.gap, 4) AS gap, round(g.gap_se, 4) AS gap_se,
       g.chosen || ' of ' || c.gap_subsamples AS chosen_by_subsamples,
       CASE WHEN g.k = c.recommended_k THEN '← ' || c.verdict
            WHEN c.verdict = 'no preferred number' AND g.k = max(g.k) OVER (PARTITION BY g.model_id, g.param_name)
            THEN '← still rising: no preferred number' END AS verdict,
       c.verdict_words || ' — the verdict averages ' || c.gap_subsamples || ' subsamples; on all-MiniLM-L6-v2 it is '
       || 'the same for seeds 0–9 (tests/test_embedding_geometry.py), where the single-sample statistic it replaces '
       || 'answered 1, 3, 6, 8, 9 or 10 by seed'
       AS caption
FROM embedding_gap g JOIN embedding_choice c USING (model_id, revision, param_name)
WHERE list_contains($models, g.model_id) AND c.verdict IS NOT NULL
ORDER BY list_position($models, g.model_id), g.param_name, g.k;
