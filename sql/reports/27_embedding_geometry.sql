-- title: Embedding geometry: anisotropy, dominant directions, norms
-- shows: per embedding, over its clustered rows: the mean cosine between tokens (0 for directions spread evenly;
--        trained embeddings share a direction: Ethayarajh 2019) and after removing the mean; the top principal
--        component's share of the variance and the participation ratio (how many directions are in use); Mu &
--        Viswanath's isotropy I(W) (1 = isotropic) before and after their all-but-the-top post-processing; the row
--        norms and their rank correlation with the token id (BPE ids follow merge order, roughly frequency).
-- draw: table
-- needs: embedding_geometry
SELECT model_id, param_name, rows, cols, round(mean_cosine, 4) AS mean_cosine,
       round(mean_cosine_centered, 5) AS mean_cosine_centered, round(top_pc_share, 4) AS top_pc_share,
       round(participation_ratio, 1) AS participation_ratio, round(isotropy, 4) AS isotropy,
       round(isotropy_all_but_top, 4) AS isotropy_all_but_top, round(norm_mean, 3) AS norm_mean,
       round(norm_std, 3) AS norm_std, round(norm_id_spearman, 3) AS norm_id_spearman
FROM embedding_geometry
WHERE list_contains($models, model_id)
ORDER BY list_position($models, model_id), param_name;
