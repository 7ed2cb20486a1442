-- embedding_assignments.sql — every row (token) of one embedding: its decoded token, cluster (NULL when left out)
-- why it was left out, and its token class.
SELECT token_id, token, cluster, excluded, token_class
FROM embedding_assignments WHERE model_id = $model_id AND revision = $revision AND param_name = $param_name
ORDER BY token_id;
