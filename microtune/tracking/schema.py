"""Every MLflow key microtune writes or reads: metrics, tags, params and artifact paths.

analysis/ imports this module too, so a renamed key breaks loudly in one place. Conventions
(DESIGN.md, "Interfaces that others depend on"):

- One experiment per study (the spec's ``name``); a parent run per launch; one child run per trial
  carrying the tag ``mlflow.parentRunId``.
- Params: the flat resolved configuration of the trial.
- Metric step: images shown to the discriminator (nimg). ``kimg`` is also logged as a metric at
  each report so that plots can use it directly.
"""

from __future__ import annotations

# -- metrics (step = nimg) -------------------------------------------------------------------------
FID = "fid"
KID = "kid"
PRECISION = "precision"
RECALL = "recall"
ADA_P = "ada_p"
ADA_RT = "ada_rt"
LOSS_G = "loss_G"
LOSS_D = "loss_D"
LOSS_PL = "loss_pl"                     # path-length penalty, at ticks where it was computed (StyleGAN2)
LOSS_R1 = "loss_r1"                     # R1 penalty, at ticks where it was computed
SEC_PER_KIMG = "sec_per_kimg"
KIMG = "kimg"
SEG_ACC = "seg_acc"
SEG_MIOU = "seg_miou"
SEG_TRAIN_LOSS = "seg_train_loss"
SEG_TEST_LOSS = "seg_test_loss"
SEG_INFER_MS = "seg_infer_ms"
SEG_MAJORITY = "seg_majority"            # test pixels of the most frequent class: a constant model's accuracy
SEG_NEAR_MAJORITY = "seg_near_majority"  # 1.0 when seg_acc <= seg_majority + 0.01 (no result), else 0.0
SEG_IOU_PREFIX = "seg_iou_"             # + class name: IoU of one class
SEG_LOSS_GAP = "seg_loss_gap"           # test loss - train loss (the HPTL paper's l_d)
SEG_EPOCH = "seg_epoch"                 # epoch of the network being trained
SEG_STAGE = "seg_stage"                 # HPTL network: 2 FCN-32s, 3 FCN-16s, 4 FCN-8s
SEG_SECONDS = "seg_seconds"             # wall time of a whole segmentation run, s
BEST_FID = "best_fid"
BEST_RECALL = "best_recall"
TRIAL_SECONDS = "trial_seconds"        # wall-clock seconds the trial has trained
ENERGY_KWH = "energy_kwh"              # when the device reports power

GAN_METRICS = (FID, KID, PRECISION, RECALL, ADA_P, ADA_RT, LOSS_G, LOSS_D, SEC_PER_KIMG, KIMG)
SEG_METRICS = (SEG_ACC, SEG_MIOU, SEG_TRAIN_LOSS, SEG_TEST_LOSS, SEG_INFER_MS, SEG_MAJORITY, SEG_NEAR_MAJORITY)
# Metrics where smaller is better; everything else in GAN_METRICS/SEG_METRICS that is scored is
# larger-is-better (SEG_MAJORITY and SEG_NEAR_MAJORITY describe the test set and are not scored).
LOWER_IS_BETTER = frozenset({FID, BEST_FID, KID, LOSS_G, LOSS_D, SEG_TRAIN_LOSS, SEG_TEST_LOSS, SEG_INFER_MS})

# -- tags -------------------------------------------------------------------------------------------
PARENT_RUN_ID = "mlflow.parentRunId"   # MLflow's own nesting tag
RUN_NAME = "mlflow.runName"
STUDY = "study"                        # the spec's name
SPEC_HASH = "spec_hash"                # sha256 of the resolved spec
GIT_SHA = "git_sha"
DETECTOR = "detector"                  # e.g. "inception-v3-tf:<sha12>" or "random-seed:0"
DEVICE = "device"                      # e.g. "cpu", "cuda:NVIDIA H100"
ROLE = "microtune.role"                # "study" (parent) or "trial" (child)
TRIAL_ID = "trial_id"                  # Ray Tune trial id
TRIAL_STATUS = "trial_status"          # "RUNNING", "FINISHED", "FAILED", "STOPPED" (early-stopped)
MODEL = "model"                        # the model family (spec model:), or a segmentation method key
RUN_KEY = "microtune.run_key"          # client-made key of a run: replays find the run by it

ROLE_STUDY = "study"
ROLE_TRIAL = "trial"

# -- params (flat resolved config; these are the study axes analysis groups by) ---------------------
AXIS_AUGPIPE = "augpipe"
AXIS_TARGET = "ada_target"
AXIS_SUBSET = "subset"
AXIS_SEED = "seed"
AXIS_MODEL = "model"
AXES = (AXIS_AUGPIPE, AXIS_TARGET, AXIS_SUBSET, AXIS_SEED, AXIS_MODEL)
# Images in the whole dataset: gives the training-set size of trials with subset None ("all").
PARAM_DATASET_SIZE = "dataset_size"
# Segmentation method label of a trial (HPTL tables): e.g. "HPTL", "HPTL-2H", "HPTL-R", "FCN-8s", "otsu".
PARAM_METHOD = "method"
PARAM_METHOD_KEY = "method_key"        # ... and its key in the segmentation method registry
PARAM_DATASET = "dataset"              # the prepared dataset's path (trial and study runs)
RETRIED = "retried"                    # tag "true" on an abandoned attempt's run (a later attempt has its own)

# -- artifacts ---------------------------------------------------------------------------------------
ARTIFACT_CONFIG = "config/resolved_config.json"
ARTIFACT_SAMPLES_DIR = "samples"
ARTIFACT_CHECKPOINT_FINAL = "checkpoints/final.pt"
ARTIFACT_CHECKPOINT_BEST = "checkpoints/best.pt"

# -- the parent (study) run of a launch: the study's answer (microtune/sweep/runner.py) -------------
LOGGED_ARTIFACTS = "mlflow.loggedArtifacts"   # MLflow's run tag listing table artifacts
ARTIFACT_SUMMARY = "study_summary.json"        # MLflow table: one row per trial (axes, best values, state)
ARTIFACT_SPEC_DIR = "spec"                     # the spec as written (YAML) and resolved (JSON)
ARTIFACT_ANALYSIS_DIR = "analysis"             # analysis/report.py's figures, tables and index
IMPORTANCE_PREFIX = "importance"               # parent metrics importance.<target>.<axis> (fANOVA)
OPTUNA_STORAGE = "optuna_storage"              # parent tags of an Optuna study: where optuna-dashboard
OPTUNA_STUDY = "optuna_study"                  # finds it, and its study name there
TRIALS_DONE = "trials_done"                    # parent metrics, step = trials done so far
TRIALS_FAILED = "trials_failed"
# parent-run params (and the tag STUDY_TRIALS, rewritten at the end with the trials that ran). The search
# method is a param of the parent run only: on segmentation trial runs "method" is PARAM_METHOD.
STUDY_TRIALS = "trials"
STUDY_SEARCH_METHOD = "method"
STUDY_SCHEDULER = "scheduler"
STUDY_SEEDS = "seeds"


def offline_detector_kind(detector: str) -> str | None:
    """What a ``detector`` tag value is when its numbers are not comparable with published FID/KID/
    recall: "random-weight detector" (``random-seed:N``) or "detector trained here on textures"
    (``texture-vgg19-seed:N``); None for the standard Inception/VGG pair or an unknown value."""
    if detector.startswith("random"):
        return "random-weight detector"
    if detector.startswith("texture"):
        return "detector trained here on textures"
    return None
