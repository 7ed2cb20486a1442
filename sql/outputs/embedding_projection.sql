-- embedding_projection.sql — the stored 2-D projection of one embedding (token id, pc1, pc2), for its figure.
SELECT token_id, pc1, pc2
FROM embedding_projection WHERE model_id = $model_id AND revision = $revision AND param_name = $param_name
ORDER BY token_id;
