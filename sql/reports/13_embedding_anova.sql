-- title: Embedding clustering by the seed's method: F, silhouette and inertia by k
-- shows: for each k of the sweep, the one-way ANOVA F of the k-means clusters of the token embeddings, the
--        silhouette and the inertia (SSW); the chosen k is F's maximum (the seed's rule), which lands on the
--        range's lower edge for most vocabularies — a degenerate choice is said under the plot; the number of
--        clusters the data support is the gap statistic's verdict (the next section).
-- draw: lines x=k y=value series=series facet=metric color=model_id sharey=false
-- needs: embedding_sweep
WITH s AS (
    SELECT model_id, revision, param_name, k, f_stat, silhouette, inertia
    FROM embedding_sweep WHERE list_contains($models, model_id)
), long AS (
    SELECT * FROM s UNPIVOT (value FOR metric IN (f_stat AS 'ANOVA F', silhouette AS 'silhouette',
                                                  inertia AS 'inertia (SSW)'))
)
SELECT l.model_id, l.model_id || ' ' || l.param_name AS series, l.k, l.metric, l.value,
       CASE WHEN c.degenerate IS NOT NULL
            THEN l.model_id || ' ' || l.param_name || ': k = ' || c.chosen_k || ' is degenerate — ' || c.degenerate END
           AS caption
FROM long l LEFT JOIN embedding_choice c USING (model_id, revision, param_name)
ORDER BY series, l.metric, l.k;
