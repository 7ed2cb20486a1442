-- title: Embedding clusters of the seed's chosen k (argmax F)
-- shows: per cluster its size, centroid norm, the tokens nearest its centroid (as the vocabulary writes them;
--        special, unused, padding and never-trained rows were left out) and what it is made of (token classes);
--        with the gap statistic's verdict beside it: where it is "one cloud" or "no preferred number", the chosen
--        partition (the seed's argmax F) is a slicing of the cloud, not a count of clusters.
-- draw: table
-- needs: embedding_clusters
WITH shares AS (
    SELECT model_id, revision, param_name, cluster, "class", count,
           round(100.0 * count / sum(count) OVER (PARTITION BY model_id, revision, param_name, cluster)) AS pct
    FROM embedding_cluster_composition
),
comp AS (
    SELECT model_id, revision, param_name, cluster,
           string_agg("class" || ' ' || pct::INTEGER || '%', ', ' ORDER BY count DESC) AS composition
    FROM shares
    GROUP BY ALL
)
SELECT c.model_id, c.param_name, ch.metric, ch.chosen_k, ch.recommended_k,
       CASE WHEN ch.verdict = 'one cloud' OR (ch.verdict IS NULL AND ch.recommended_k = 1)
                THEN 'one cloud: no k gives real clusters (gap statistic)'
            WHEN ch.verdict = 'no preferred number' THEN 'no preferred number of clusters (gap statistic)'
            WHEN ch.recommended_k IS NULL THEN NULL
            ELSE 'the gap statistic finds ' || ch.recommended_k || ' clusters' END AS verdict,
       c.cluster, c.size, round(c.centroid_norm, 4) AS centroid_norm, comp.composition,
       array_to_string(list_transform(c.representatives[1:8], lambda t: '"' || t || '"'), ' ') AS representatives
FROM embedding_clusters c JOIN embedding_choice ch USING (model_id, revision, param_name)
LEFT JOIN comp USING (model_id, revision, param_name, cluster)
WHERE list_contains($models, c.model_id)
ORDER BY list_position($models, c.model_id), c.param_name, c.size DESC;
