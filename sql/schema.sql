-- schema.sql — the tpa-dist database: one file, one writer (the driver), any number of readers.
-- Produces: tables runs, settings, models, tensors, matrix_analysis, spectra, embedding_*, delta_*, rmt_analysis,
-- rmt_traps (created if absent).
-- Keys make every write idempotent: re-running a submit never duplicates a row.

CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,
    argv            VARCHAR,
    config          JSON,         -- the resolved job (models, settings, workers)
    versions        JSON,         -- tpa-dist, ray, torch, numpy, duckdb, python
    host            VARCHAR,
    started_at      TIMESTAMP,
    finished_at     TIMESTAMP,
    status          VARCHAR,      -- running | ok | failed | interrupted | abandoned (its driver died)
    matrices_total  INTEGER,
    matrices_done   INTEGER,
    matrices_failed INTEGER,
    matrices_reused INTEGER,      -- already stored for the same model, revision and settings
    bytes_done      BIGINT,
    seconds         DOUBLE,       -- wall time of the work (analysis and embeddings), Ray start-up excluded
    ray_startup_s   DOUBLE,
    matrices_per_s  DOUBLE,       -- over the matrix phase (phases.analysis)
    bytes_per_s     DOUBLE,       -- over the matrix phase
    throughput      JSON,         -- per device: matrices, bytes, seconds
    summary         VARCHAR
);

ALTER TABLE runs ADD COLUMN IF NOT EXISTS phases JSON;  -- seconds per phase: startup (interpreter and imports),
-- plan, ray_startup, analysis, embedding, outputs (CSV and report), writing (database writes, within analysis)

CREATE TABLE IF NOT EXISTS settings (
    settings_id VARCHAR PRIMARY KEY,
    settings    JSON
);

CREATE TABLE IF NOT EXISTS models (
    model_id     VARCHAR NOT NULL,
    revision     VARCHAR NOT NULL,  -- commit sha for Hub models, local-<fingerprint> for folders
    source_path  VARCHAR,
    architecture VARCHAR,
    config       JSON,
    config_error VARCHAR,
    num_shards   INTEGER,
    num_tensors  INTEGER,
    num_params   BIGINT,
    status       VARCHAR,           -- ok | error
    error        VARCHAR,
    run_id       VARCHAR,
    PRIMARY KEY (model_id, revision)
);

CREATE TABLE IF NOT EXISTS tensors (
    model_id     VARCHAR NOT NULL,
    revision     VARCHAR NOT NULL,
    param_name   VARCHAR NOT NULL,
    shard        VARCHAR,
    dtype        VARCHAR,
    shape        BIGINT[],
    ndim         INTEGER,
    numel        BIGINT,
    nbytes       BIGINT,
    layer_index  INTEGER,
    block_type   VARCHAR,
    expert_index INTEGER,
    PRIMARY KEY (model_id, revision, param_name)
);

CREATE TABLE IF NOT EXISTS matrix_analysis (
    model_id            VARCHAR NOT NULL,
    revision            VARCHAR NOT NULL,
    settings_id         VARCHAR NOT NULL,
    matrix_key          VARCHAR NOT NULL,  -- param_name, or param_name[e] for an expert slice
    param_name          VARCHAR NOT NULL,
    expert_index        INTEGER,
    layer_index         INTEGER,
    block_type          VARCHAR,
    kind                VARCHAR,           -- matrix | vector (1-D) | tensor (other ranks): stats only
    shape               VARCHAR,
    rows                BIGINT,
    cols                BIGINT,
    numel               BIGINT,
    dtype               VARCHAR,
    shard               VARCHAR,
    nbytes              BIGINT,
    design_rank         INTEGER,
    actual_rank         INTEGER,
    rank_ratio          DOUBLE,
    energy_rank_50      INTEGER,
    energy_rank_90      INTEGER,
    energy_rank_95      INTEGER,
    energy_rank_99      INTEGER,
    mean                DOUBLE,
    std                 DOUBLE,
    var                 DOUBLE,
    min                 DOUBLE,
    max                 DOUBLE,
    sparsity            DOUBLE,
    sparsity_threshold  DOUBLE,
    spectral_norm       DOUBLE,
    frobenius_norm      DOUBLE,
    nuclear_norm        DOUBLE,
    stable_rank         DOUBLE,
    effective_rank      DOUBLE,
    condition_number    DOUBLE,            -- NULL when the matrix is singular (σ_min = 0)
    alpha               DOUBLE,
    D                   DOUBLE,
    xmin                DOUBLE,
    xmax                DOUBLE,
    num_pl_spikes       INTEGER,
    lambda_max          DOUBLE,
    alpha_weighted      DOUBLE,
    log_norm            DOUBLE,
    log_spectral_norm   DOUBLE,
    log_alpha_norm      DOUBLE,
    entropy             DOUBLE,
    status              VARCHAR NOT NULL,  -- ok | error | skipped
    error               VARCHAR,
    method              VARCHAR,
    device              VARCHAR,
    fallback_reason     VARCHAR,
    node                VARCHAR,
    worker              VARCHAR,
    seconds             DOUBLE,
    run_id              VARCHAR,
    created_at          TIMESTAMP DEFAULT current_timestamp,
    -- the seed tool's names of energy_rank_90 and its ratio: computed on read (virtual), never stored twice
    svd_90_percent_rank INTEGER GENERATED ALWAYS AS (energy_rank_90) VIRTUAL,
    svd_90_percent_ratio DOUBLE GENERATED ALWAYS AS (CASE WHEN design_rank > 0 THEN energy_rank_90 / design_rank END)
        VIRTUAL,
    PRIMARY KEY (model_id, revision, settings_id, matrix_key)
);
-- Spectrum's signal-to-noise ratio (compute/metrics.spectrum_snr): what `plan unfreeze` ranks by; NULL in rows
-- stored before it existed (the plans compute it from the stored spectrum then)
ALTER TABLE matrix_analysis ADD COLUMN IF NOT EXISTS snr DOUBLE;

CREATE TABLE IF NOT EXISTS spectra (
    model_id        VARCHAR NOT NULL,
    revision        VARCHAR NOT NULL,
    settings_id     VARCHAR NOT NULL,
    matrix_key      VARCHAR NOT NULL,
    param_name      VARCHAR NOT NULL,
    expert_index    INTEGER,
    singular_values DOUBLE[],              -- the whole spectrum, descending
    PRIMARY KEY (model_id, revision, settings_id, matrix_key)
);

-- Embedding clustering (k-means sweep over the token-embedding matrix; see tpa_dist/embedding.py).
CREATE TABLE IF NOT EXISTS embedding_sweep (
    model_id   VARCHAR NOT NULL,
    revision   VARCHAR NOT NULL,
    param_name VARCHAR NOT NULL,  -- the embedding (or untied output head)
    k          INTEGER NOT NULL,
    f_stat     DOUBLE,            -- one-way ANOVA F = (SSB/(k-1)) / (SSW/(n-k)) (Calinski–Harabasz)
    p_value    DOUBLE,
    inertia    DOUBLE,            -- SSW
    silhouette DOUBLE,            -- on a fixed-size sample
    method     VARCHAR,           -- kmeans (exact Lloyd to convergence, numpy) | kmeans_torch_gpu (the same in torch)
    seconds    DOUBLE,
    PRIMARY KEY (model_id, revision, param_name, k)
);
ALTER TABLE embedding_sweep ADD COLUMN IF NOT EXISTS iterations INTEGER;  -- Lloyd iterations of the kept start

CREATE TABLE IF NOT EXISTS embedding_choice (
    model_id   VARCHAR NOT NULL,
    revision   VARCHAR NOT NULL,
    param_name VARCHAR NOT NULL,
    rows       BIGINT,
    cols       BIGINT,
    chosen_k   INTEGER,
    rule       VARCHAR,           -- max_f (the seed's rule)
    elbow_k    INTEGER,           -- kneedle elbow of the inertia curve, for comparison
    seed       INTEGER,
    seconds    DOUBLE,
    run_id     VARCHAR,
    PRIMARY KEY (model_id, revision, param_name)
);
-- rows: the rows clustered; vocab_rows: all rows of the matrix; excluded_rows: specials, unused, padding,
-- all-zero and never-trained rows left out (listed in embedding_assignments.excluded)
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS vocab_rows BIGINT;
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS excluded_rows BIGINT;
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS include_special BOOLEAN;
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS silhouette DOUBLE;       -- of the chosen k
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS silhouette_k INTEGER;    -- the k with the best silhouette
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS smallest_cluster BIGINT;
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS degenerate VARCHAR;      -- why not to read it as structure

CREATE TABLE IF NOT EXISTS embedding_clusters (
    model_id           VARCHAR NOT NULL,
    revision           VARCHAR NOT NULL,
    param_name         VARCHAR NOT NULL,
    cluster            INTEGER NOT NULL,
    size               BIGINT,
    centroid_norm      DOUBLE,
    representative_ids INTEGER[],
    representatives    VARCHAR[],  -- decoded token strings, nearest the centroid first
    PRIMARY KEY (model_id, revision, param_name, cluster)
);

CREATE TABLE IF NOT EXISTS embedding_assignments (
    model_id VARCHAR NOT NULL,
    revision VARCHAR NOT NULL,
    param_name VARCHAR NOT NULL,
    token_id INTEGER NOT NULL,
    token    VARCHAR,
    cluster  INTEGER,              -- NULL for rows left out of the clustering
    PRIMARY KEY (model_id, revision, param_name, token_id)
);
ALTER TABLE embedding_assignments ADD COLUMN IF NOT EXISTS excluded VARCHAR;  -- special|unused|padding|zero|untrained
-- subword | word_initial | digit | punctuation | latin | cjk | other_script (tpa_dist/checkpoint/token_classes.py)
ALTER TABLE embedding_assignments ADD COLUMN IF NOT EXISTS token_class VARCHAR;
-- metric: the rows clustered (cosine: unit rows; euclidean: raw); recommended_k: the gap statistic's k (1: no k gives
-- real clusters); phase_seconds: where the embedding step's time went (read, geometry, sweep, gap, representatives)
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS metric VARCHAR;
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS recommended_k INTEGER;
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS phase_seconds JSON;

-- embedding_geometry: the embedding's shape over its clustered rows (tpa_dist/compute/embedding_geometry.py):
-- anisotropy (Ethayarajh 2019), dominant directions, Mu & Viswanath's (2018) isotropy, row norms.
CREATE TABLE IF NOT EXISTS embedding_geometry (
    model_id              VARCHAR NOT NULL,
    revision              VARCHAR NOT NULL,
    param_name            VARCHAR NOT NULL,
    rows                  BIGINT,
    cols                  BIGINT,
    mean_cosine           DOUBLE,    -- mean cosine over all pairs of distinct rows (exact)
    mean_cosine_centered  DOUBLE,    -- the same after subtracting the mean row
    top_pc_share          DOUBLE,    -- the top principal component's share of the variance
    top_pc_shares         DOUBLE[],  -- the top 10
    participation_ratio   DOUBLE,    -- (Σλ)² / Σλ² of the covariance eigenvalues: the directions in use
    isotropy              DOUBLE,    -- min_c Z(c) / max_c Z(c), Z(c) = Σ exp(cᵀw), c the eigenvectors of WᵀW
    isotropy_all_but_top  DOUBLE,    -- the same after removing the mean and the top D directions
    all_but_top_d         INTEGER,   -- D = d / 100
    sample_rows           BIGINT,    -- NULL: all exact, else the sample rows behind isotropy and Σλ² (large ones)
    mean_vector_norm      DOUBLE,
    norm_mean             DOUBLE,
    norm_std              DOUBLE,
    norm_min              DOUBLE,
    norm_max              DOUBLE,
    norm_id_spearman      DOUBLE,    -- rank correlation of row norm with token id (ids follow frequency in BPE)
    PRIMARY KEY (model_id, revision, param_name)
);

-- embedding_gap: the gap statistic per k (Tibshirani et al. 2001) behind recommended_k
CREATE TABLE IF NOT EXISTS embedding_gap (
    model_id   VARCHAR NOT NULL,
    revision   VARCHAR NOT NULL,
    param_name VARCHAR NOT NULL,
    k          INTEGER NOT NULL,
    gap        DOUBLE,
    gap_sd     DOUBLE,
    log_wk     DOUBLE,
    PRIMARY KEY (model_id, revision, param_name, k)
);
-- gap: the mean over the subsamples; gap_se: its standard error from their spread; gap_sd: the reference sets'
-- spread (Tibshirani's s_k); chosen: how many subsamples' own 2001 rule chose this k (the evidence of stability)
ALTER TABLE embedding_gap ADD COLUMN IF NOT EXISTS gap_se DOUBLE;
ALTER TABLE embedding_gap ADD COLUMN IF NOT EXISTS chosen INTEGER;
-- the gap statistic's verdict: 'clusters' (recommended_k), 'one cloud' (1) or 'no preferred number' (recommended_k
-- NULL: the gap still rises at the end of the range); its sentence with the evidence; the subsamples it averaged
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS verdict VARCHAR;
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS verdict_words VARCHAR;
ALTER TABLE embedding_choice ADD COLUMN IF NOT EXISTS gap_subsamples INTEGER;

-- embedding_projection: a sample of the clustered rows (≤ 5,000) on the top two principal axes, for the figure
CREATE TABLE IF NOT EXISTS embedding_projection (
    model_id   VARCHAR NOT NULL,
    revision   VARCHAR NOT NULL,
    param_name VARCHAR NOT NULL,
    token_id   INTEGER NOT NULL,
    pc1        DOUBLE,
    pc2        DOUBLE,
    PRIMARY KEY (model_id, revision, param_name, token_id)
);

-- delta_analysis: ΔW = W_tuned − W_base of every matrix present in both models with the same shape (--base);
-- the spectral columns are those of matrix_analysis, computed on ΔW. Pairs that cannot be compared (a tensor in
-- one model only, shapes that differ) are rows with status 'skipped' and the reason in `error`.
CREATE TABLE IF NOT EXISTS delta_analysis (
    model_id             VARCHAR NOT NULL,  -- the tuned model
    revision             VARCHAR NOT NULL,
    base_model_id        VARCHAR NOT NULL,
    base_revision        VARCHAR NOT NULL,
    settings_id          VARCHAR NOT NULL,
    matrix_key           VARCHAR NOT NULL,
    param_name           VARCHAR NOT NULL,
    expert_index         INTEGER,
    layer_index          INTEGER,
    block_type           VARCHAR,
    shape                VARCHAR,
    rows                 BIGINT,
    cols                 BIGINT,
    dtype                VARCHAR,
    base_dtype           VARCHAR,
    status               VARCHAR NOT NULL,  -- ok | error | skipped
    error                VARCHAR,
    device               VARCHAR,
    seconds              DOUBLE,
    node                 VARCHAR,
    worker               VARCHAR,
    design_rank          INTEGER,
    actual_rank          INTEGER,           -- 0 for an unchanged matrix (ΔW = 0)
    rank_ratio           DOUBLE,
    energy_rank_50       INTEGER,
    energy_rank_90       INTEGER,           -- the LoRA rank that captures 90 % of the update's energy
    energy_rank_95       INTEGER,
    energy_rank_99       INTEGER,
    spectral_norm        DOUBLE,
    frobenius_norm       DOUBLE,
    nuclear_norm         DOUBLE,
    stable_rank          DOUBLE,
    effective_rank       DOUBLE,
    condition_number     DOUBLE,
    alpha                DOUBLE,
    D                    DOUBLE,
    xmin                 DOUBLE,
    xmax                 DOUBLE,
    num_pl_spikes        INTEGER,
    lambda_max           DOUBLE,
    alpha_weighted       DOUBLE,
    log_norm             DOUBLE,
    log_spectral_norm    DOUBLE,
    log_alpha_norm       DOUBLE,
    entropy              DOUBLE,
    relative_update      DOUBLE,            -- ‖ΔW‖_F / ‖W_base‖_F
    spectral_update      DOUBLE,            -- ‖ΔW‖₂ / ‖W_base‖₂
    base_frobenius_norm  DOUBLE,
    tuned_frobenius_norm DOUBLE,
    subspace_side        VARCHAR,           -- right | left: the smaller side's singular vectors
    subspace_rank        INTEGER,           -- r of the principal angles
    principal_angles     DOUBLE[],          -- radians, ascending: top-r singular subspaces of base vs tuned
    max_principal_angle  DOUBLE,
    intruder_k           INTEGER,
    intruder_epsilon     DOUBLE,
    intruders            INTEGER,           -- top-k tuned singular vectors with |cos| < ε to every base vector
    intruder_similarity  DOUBLE[],
    run_id               VARCHAR,
    created_at           TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (model_id, revision, base_model_id, base_revision, settings_id, matrix_key)
);
ALTER TABLE delta_analysis ADD COLUMN IF NOT EXISTS snr DOUBLE;  -- of ΔW, as matrix_analysis.snr

CREATE TABLE IF NOT EXISTS delta_spectra (
    model_id        VARCHAR NOT NULL,
    revision        VARCHAR NOT NULL,
    base_model_id   VARCHAR NOT NULL,
    base_revision   VARCHAR NOT NULL,
    settings_id     VARCHAR NOT NULL,
    matrix_key      VARCHAR NOT NULL,
    singular_values DOUBLE[],           -- every singular value of ΔW, descending
    PRIMARY KEY (model_id, revision, base_model_id, base_revision, settings_id, matrix_key)
);

-- rmt_analysis: WeightWatcher's per-layer columns for each matrix analyzed with --rmt, under its names (the view
-- weightwatcher_details presents them with its conventions). Keyed by rmt_id, the [rmt] settings' hash.
CREATE TABLE IF NOT EXISTS rmt_analysis (
    model_id                VARCHAR NOT NULL,
    revision                VARCHAR NOT NULL,
    settings_id             VARCHAR NOT NULL,
    rmt_id                  VARCHAR NOT NULL,
    matrix_key              VARCHAR NOT NULL,
    run_id                  VARCHAR,
    N                       BIGINT,            -- the long side
    M                       BIGINT,            -- the short side: the number of eigenvalues
    Q                       DOUBLE,            -- N / M
    num_evals               INTEGER,
    sv_max                  DOUBLE,
    sv_min                  DOUBLE,
    matrix_rank             INTEGER,           -- tpa-dist's numerical rank (actual_rank)
    rank_loss               INTEGER,           -- M − matrix_rank
    weak_rank_loss          INTEGER,           -- eigenvalues below [rmt] tolerance (1e-6)
    entropy                 DOUBLE,            -- WeightWatcher's matrix entropy
    fit                     VARCHAR,           -- PL | TPL | E_TPL, +xmin_peak / +clip_xmax
    status                  VARCHAR,           -- success | failed (the power-law fit)
    alpha                   DOUBLE,
    xmin                    DOUBLE,
    xmax                    DOUBLE,
    D                       DOUBLE,
    sigma                   DOUBLE,            -- alpha's standard error
    num_pl_spikes           INTEGER,
    alpha_weighted          DOUBLE,
    log_alpha_norm          DOUBLE,
    tpl_lambda              DOUBLE,            -- WeightWatcher's Lambda: the truncated power law's cutoff (fit TPL / E_TPL)
    num_fingers             INTEGER,           -- clip_xmax: top eigenvalues clipped
    raw_alpha               DOUBLE,            -- clip_xmax: alpha before clipping
    num_spikes              INTEGER,           -- beyond the MP bulk edge plus the Tracy–Widom margin
    sigma_mp                DOUBLE,
    mp_softrank             DOUBLE,            -- bulk_max / lambda_max
    bulk_min                DOUBLE,
    bulk_max                DOUBLE,            -- λ₊, the MP bulk edge
    W_scale                 DOUBLE,
    seed                    BIGINT,            -- of the shuffles (with the matrix's key)
    replicas                INTEGER,           -- shuffles pooled (5 below 100 eigenvalues)
    max_rand_eval           DOUBLE,
    rand_distance           DOUBLE,            -- Jensen–Shannon distance, sorted ESD vs shuffled
    ww_softrank             DOUBLE,
    ww_maxdist              DOUBLE,
    rand_num_spikes         INTEGER,           -- correlation traps (rmt_traps names them)
    rand_sigma_mp           DOUBLE,
    rand_mp_softrank        DOUBLE,
    rand_bulk_min           DOUBLE,
    rand_bulk_max           DOUBLE,
    rand_W_scale            DOUBLE,
    detX_num                INTEGER,
    detX_val                DOUBLE,
    detX_val_unrescaled     DOUBLE,
    ERG_gap                 INTEGER,
    bulk_mean_vec_entropy   DOUBLE,
    bulk_var_vec_entropy    DOUBLE,
    tail_mean_vec_entropy   DOUBLE,
    tail_var_vec_entropy    DOUBLE,
    bulk_mean_loc_ratio     DOUBLE,
    bulk_var_loc_ratio      DOUBLE,
    tail_mean_loc_ratio     DOUBLE,
    tail_var_loc_ratio      DOUBLE,
    bulk_mean_part_ratio    DOUBLE,
    bulk_var_part_ratio     DOUBLE,
    tail_mean_part_ratio    DOUBLE,
    tail_var_part_ratio     DOUBLE,
    seconds                 DOUBLE,            -- the RMT analyses' own time
    created_at              TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (model_id, revision, settings_id, rmt_id, matrix_key)
);

-- rmt_traps: each matrix's correlation traps by position — the rand_num_spikes largest |w| (at most 64): a
-- shuffled matrix keeps its elements, so the spikes of its ESD come from its largest entries.
CREATE TABLE IF NOT EXISTS rmt_traps (
    model_id     VARCHAR NOT NULL,
    revision     VARCHAR NOT NULL,
    settings_id  VARCHAR NOT NULL,
    rmt_id       VARCHAR NOT NULL,
    matrix_key   VARCHAR NOT NULL,
    trap         INTEGER NOT NULL,  -- 0 = largest |value|
    row_index    BIGINT,            -- in the layer's weight as stored (out, in)
    col_index    BIGINT,
    value        DOUBLE,
    PRIMARY KEY (model_id, revision, settings_id, rmt_id, matrix_key, trap)
);

-- cohorts: a census's definition — its models enumerated from a file (--models-from) or a Hub query (--hub-query),
-- one row per listing; `members` are the specs submitted (Hub models pinned to the commit listed).
CREATE TABLE IF NOT EXISTS cohorts (
    name       VARCHAR NOT NULL,
    listed_at  TIMESTAMP NOT NULL,
    source     VARCHAR,            -- file | hub
    query      VARCHAR,            -- the file's path, or the Hub query (author= search= filter= sort= limit=)
    members    VARCHAR[],
    run_id     VARCHAR,            -- the submit that listed it
    PRIMARY KEY (name, listed_at)
);

-- cohort_members: one row per model of a listing, to join with the results (USING (model_id, revision)).
CREATE TABLE IF NOT EXISTS cohort_members (
    name       VARCHAR NOT NULL,
    listed_at  TIMESTAMP NOT NULL,
    position   INTEGER NOT NULL,   -- 1 = first listed (most downloads, with the default sort)
    spec       VARCHAR,
    model_id   VARCHAR,
    revision   VARCHAR,            -- the commit listed (NULL for a spec without one)
    downloads  BIGINT,
    gated      VARCHAR,            -- the Hub's gated flag when listed (auto, manual), else NULL
    PRIMARY KEY (name, listed_at, position)
);
