-- title: Embedding clusters of the chosen k
-- shows: size, centroid norm and the tokens nearest each centroid (decoded strings).
-- draw: table
SELECT c.model_id, c.tensor, ch.chosen_k, ch.elbow_k, c.cluster, c.size, round(c.centroid_norm, 4) AS centroid_norm,
       array_to_string(list_transform(c.representatives[1:8], lambda t: '"' || t || '"'), ' ') AS representatives
FROM embedding_clusters c JOIN embedding_choice ch USING (model_id, revision, tensor)
WHERE list_contains($models, c.model_id)
ORDER BY c.model_id, c.tensor, c.size DESC;
