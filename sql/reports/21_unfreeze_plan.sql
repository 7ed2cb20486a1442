-- title: What to fine-tune: Spectrum's signal-to-noise ranking
-- shows: per model and weight type (the module name after its layer index), how many modules Spectrum's rule
--        unfreezes at 50 % (`tpa-dist plan unfreeze --top-percent P` writes the YAML Axolotl reads, for any P),
--        and the SNR of the highest and lowest module (view unfreeze_plan; SNR = signal ÷ noise singular values
--        around the Marchenko–Pastur edge of the IQR noise estimate, ÷ σ_max).
-- draw: table
SELECT model_id, weight_type, of_type AS modules, count(*) FILTER (unfrozen) AS unfrozen,
       round(max(snr), 3) AS snr_max, round(min(snr), 3) AS snr_min,
       string_agg(module, ', ' ORDER BY place) FILTER (unfrozen) AS unfrozen_modules
FROM unfreeze_plan
WHERE list_contains($models, model_id)
GROUP BY model_id, weight_type, of_type
ORDER BY list_position($models, model_id), weight_type;
