-- embedding_gap.sql — the gap statistic per k of one embedding (behind recommended_k), for the anova figure.
SELECT k, gap, gap_se, gap_sd, log_wk, chosen
FROM embedding_gap WHERE model_id = $model_id AND revision = $revision AND param_name = $param_name
ORDER BY k;
