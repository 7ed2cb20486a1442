-- embedding_sweep.sql — the k sweep of one embedding (F, p-value, inertia, silhouette per k), ascending k.
SELECT k, f_stat, p_value, inertia, silhouette, iterations, method, seconds
FROM embedding_sweep WHERE model_id = $model_id AND revision = $revision AND param_name = $param_name ORDER BY k;
