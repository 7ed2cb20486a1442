-- title: Cohort map
-- shows: (a cohort: more than 16 models) every model as one point: its profile (per block type, the median alpha,
--        90 % energy rank ratio and stable rank) as robust z against the cohort (clipped at ±10), projected on the
--        profiles' two principal components (the axes say the share of the variance each carries). Models that
--        look alike sit together; outliers (some |z| > 3.5) are orange and named; the pointer names every point.
-- draw: map point=model_id feature=feature value=z
-- optional: true
-- needs: models>16
SELECT model_id, feature, z
FROM cohort_z($models)
WHERE len($models) > 16
ORDER BY list_position($models, model_id), feature;
