-- title: Embedding clustering: ANOVA F by k
-- shows: the one-way ANOVA F of the k-means clusters of the token embeddings for each k tried; the chosen
--        k is the maximum (the seed's rule).
-- draw: lines x=k y=f_stat series=series
SELECT model_id || ' ' || tensor AS series, k, f_stat
FROM embedding_sweep
WHERE list_contains($models, model_id)
ORDER BY series, k;
