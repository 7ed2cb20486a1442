-- embedding_clusters.sql — the clusters of the chosen k of one embedding, with their representative tokens.
SELECT cluster, size, centroid_norm, representative_ids, representatives
FROM embedding_clusters WHERE model_id = $model_id AND revision = $revision AND param_name = $param_name
ORDER BY cluster;
