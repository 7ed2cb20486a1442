-- title: Embedding clusters of the chosen k
-- shows: per cluster its size, centroid norm and the tokens nearest its centroid (decoded strings; special,
--        unused, padding and never-trained rows were left out of the clustering and never represent one).
-- draw: table
SELECT c.model_id, c.param_name, ch.chosen_k, ch.silhouette_k, ch.elbow_k, c.cluster, c.size,
       round(c.centroid_norm, 4) AS centroid_norm,
       array_to_string(list_transform(c.representatives[1:8], lambda t: '"' || t || '"'), ' ') AS representatives
FROM embedding_clusters c JOIN embedding_choice ch USING (model_id, revision, param_name)
WHERE list_contains($models, c.model_id)
ORDER BY list_position($models, c.model_id), c.param_name, c.size DESC;
