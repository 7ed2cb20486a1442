-- title: Near-identical models
-- shows: (a cohort: more than 16 models) groups of models whose profiles — per block type, the median alpha, 90 %
--        energy rank ratio and stable rank — differ by at most 0.1 % in every feature (the largest relative
--        difference |a − b| / max(|a|, |b|)): copies, re-uploads and checkpoints that barely moved. Each model joins
--        the first model (in the report's order) within that distance; a group is listed with its members and the
--        largest distance of a member to the first.
-- draw: table
-- optional: true
-- needs: models>16
WITH p AS (SELECT model_id, feature, value FROM cohort_profile($models)),
pairs AS (
    SELECT a.model_id AS first, b.model_id AS member,
           max(abs(a.value - b.value) / greatest(abs(a.value), abs(b.value), 1e-300)) AS distance
    FROM p a
    JOIN p b ON a.feature = b.feature AND list_position($models, a.model_id) < list_position($models, b.model_id)
    GROUP BY ALL
    HAVING max(abs(a.value - b.value) / greatest(abs(a.value), abs(b.value), 1e-300)) <= 0.001
),
joined AS (
    SELECT member, first, distance FROM pairs
    QUALIFY row_number() OVER (PARTITION BY member ORDER BY list_position($models, first)) = 1
),
grouped AS (  -- a member whose first is itself a member joins that one's group
    SELECT j.member, coalesce(up.first, j.first) AS first, j.distance FROM joined j LEFT JOIN joined up ON up.member = j.first
)
SELECT first AS group_of, count(*) + 1 AS models,
       first || ', ' || string_agg(member, ', ' ORDER BY list_position($models, member)) AS members,
       max(distance) AS largest_distance
FROM grouped
WHERE len($models) > 16
GROUP BY first
ORDER BY models DESC, list_position($models, first);
