-- embedding_choice.sql — the stored choice of every clustered embedding of one (model, revision), for the per-model
-- files (clustering_results.json, cluster_representatives.json, <model>_embedding.csv, anova_curve.png).
SELECT param_name, rows, cols, chosen_k, rule, elbow_k, silhouette_k, degenerate, include_special, seconds, metric,
       recommended_k, phase_seconds, verdict, verdict_words, gap_subsamples
FROM embedding_choice WHERE model_id = $model_id AND revision = $revision ORDER BY param_name;
