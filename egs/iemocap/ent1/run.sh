#!/usr/bin/env bash
# IEMOCAP: ENT and FENT under leave-one-session-out five-fold cross-validation,
# from the released corpus to RESULTS.md (per-fold WA, UA, macro-F1, WER, CER and
# their mean ± standard deviation over folds).
#
#   ./run.sh --iemocap_root /corpora/IEMOCAP_full_release           # everything
#   ./run.sh --iemocap_root DIR --folds "1 2"                        # some folds
#   ./run.sh --stage 12                                              # re-aggregate only
#
# Stages (the numbers of ent.sh for 2-11):
#   1     data preparation (local/data.sh): data/session{1..5}/, data/fold{1..5}/{train,dev,test}/
#   2-11  per fold k, the stage driver ent.sh with --datadir data/fold<k> --expdir exp/fold<k>
#         (speed perturbation and emotion mixing, validation and CMVN, token list, SSL feature
#         cache (--ent_opts "--ssl_cache_configs ..."), training, decoding, scoring, packing;
#         the token list and CMVN statistics come from the fold's training set only, the mixes
#         join utterances of one training (or dev) speaker, the dev set selects and averages
#         checkpoints, the test session is only decoded, never mixed). Each fold is one
#         ${train_cmd} job (cmd.sh), --fold_nj at a time, its log in exp/fold<k>/ent.log.
#   12    aggregation of exp/fold<k>/<model tag>/<decode tag>/test/scores.json into RESULTS.md
set -euo pipefail

# log, options and job dispatch (utils/stage_lib.sh); the folds (utils/fold_lib.sh), as ../ser1/run.sh.
. utils/stage_lib.sh
. utils/fold_lib.sh

stage=1                   # First stage to run.
stop_stage=12             # Last stage to run.
iemocap_root=""           # IEMOCAP release root (needed by stage 1).
folds="1 2 3 4 5"         # Folds to run (fold k tests on session k).
fold_nj=1                 # Folds run at once (one ${train_cmd} job each; each trains its models in turn).
nj=4                      # Parallel CPU jobs.
ngpu=auto                 # GPUs for training and decoding; auto: 1 if torch sees a GPU, else 0.
python=python3            # Python interpreter.
train_configs="conf/train_ent.yaml conf/train_fent.yaml"  # One model per config.
train_args=""             # Training options over the configs' (in the model tags), e.g. "--max_epoch 30".
decode_config=conf/decode.yaml   # Decoding options.
inference_args=""         # Decoding options over the decoding config's (in the decode tag), e.g. "--beam 8".
inference_model=valid.loss.ave.pth  # Checkpoint decoded (average of the best on dev).
token_type=bpe            # char, bpe or unigram.
nbpe=300                  # Vocabulary size for bpe/unigram (trained per fold).
speed_perturb_factors=""  # e.g. "0.9 1.0 1.1" (triples training audio on disk, per fold).
mix=true                  # Emotion mixing of each fold's train and dev sets (frame emotions for ZED).
mix_share=0.5             # Mixed utterances per original utterance.
mix_max_duration=20       # Longest mixed utterance in seconds.
mix_opts=""               # More options of python -m ent.bin.mix_data_dir, e.g. "--no-loudness-match".
strict=false              # Data preparation stops at the first unparseable line.
dev_speakers=""           # Dev speaker overrides, e.g. "1=Ses05F" (see local/data.sh).
ent_opts=""               # More options for ent.sh, e.g. "--cmvn_max_utts 2000".
results=RESULTS.md        # Cross-validation table.

help_message=$(cat << EOF
Usage: $0 --iemocap_root DIR [options]

  --stage N                 first stage (default: ${stage})
  --stop_stage N            last stage (default: ${stop_stage})
  --iemocap_root DIR        IEMOCAP release root, holding Session1 ... Session5 (stage 1)
  --folds "1 2 3 4 5"       folds to run (default: "${folds}")
  --fold_nj N               folds run at once, each a \${train_cmd} job of cmd.sh (default: ${fold_nj})
  --nj N                    parallel CPU jobs (default: ${nj})
  --ngpu N|auto             GPUs for training/decoding (default: ${ngpu})
  --python PY               python interpreter (default: ${python})
  --train_configs "A B"     one model per config (default: "${train_configs}")
  --train_args "..."        training options over the configs' (default: none)
  --decode_config FILE      decoding options (default: ${decode_config})
  --inference_args "..."    decoding options over the decoding config's (default: none)
  --inference_model FILE    checkpoint to decode (default: ${inference_model})
  --token_type TYPE         char, bpe or unigram (default: ${token_type})
  --nbpe N                  vocabulary size (default: ${nbpe})
  --speed_perturb_factors   e.g. "0.9 1.0 1.1" (default: none)
  --mix true|false          emotion mixing: each fold trains and validates on its sets plus
                            same-speaker neutral/emotional mixes with known intervals (default: ${mix})
  --mix_share P             mixed utterances per original utterance (default: ${mix_share})
  --mix_max_duration S      longest mixed utterance in seconds (default: ${mix_max_duration})
  --mix_opts "..."          more mixing options, e.g. "--no-loudness-match --trim-db 35"
  --strict true|false       strict data preparation (default: ${strict})
  --dev_speakers "K=SPK"    dev speaker overrides (default: none)
  --ent_opts "..."          more ent.sh options (default: none)
  --results FILE            cross-validation table (default: ${results})

Stages: 1 data preparation; 2-11 ent.sh per fold (see ./ent.sh --help; logs in
exp/fold<k>/ent.log); 12 aggregation.
EOF
)

start_fold_run 5 "$@"

# The options of every fold's ent.sh run (FOLD: the fold number).
# shellcheck disable=SC2206
ent_args=(
  --nj "${nj}" --ngpu "${ngpu}" --python "${python}"
  --datadir data/foldFOLD --expdir exp/foldFOLD
  --train_set train --valid_set dev --test_sets test
  --results exp/foldFOLD/RESULTS.md
  --train_configs "${train_configs}" --train_args "${train_args}"
  --decode_config "${decode_config}" --inference_args "${inference_args}"
  --inference_model "${inference_model}"
  --token_type "${token_type}" --nbpe "${nbpe}"
  --speed_perturb_factors "${speed_perturb_factors}"
  --mix "${mix}" --mix_share "${mix_share}" --mix_max_duration "${mix_max_duration}"
  --mix_opts "${mix_opts}"
  ${ent_opts}
)
# The model and decode tags, as ent.sh derives them (exp/fold<k>/<model tag>/<decode tag>).
read_fold_tags ./ent.sh "${ent_args[@]}"

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  if [ -z "${iemocap_root}" ]; then
    log "Error: stage 1 needs --iemocap_root DIR (the folder holding Session1 ... Session5)"
    exit 2
  fi
  log "Stage 1: data preparation from ${iemocap_root}"
  local/data.sh --iemocap_root "${iemocap_root}" --nj "${nj}" --strict "${strict}" \
    --dev_speakers "${dev_speakers}" --python "${python}"
fi

# Stages 2-11: ent.sh on every fold (exp/fold<k>/ent.log).
run_folds 2 11 "(--iemocap_root DIR)" ./ent.sh "${ent_args[@]}"

if [ "${stage}" -le 12 ] && [ "${stop_stage}" -ge 12 ]; then
  aggregate_folds "Stage 12" \
    --title "IEMOCAP: leave-one-session-out cross-validation" \
    --note "4 classes (neutral, happy+excited, angry, sad); fold k tests on session k, dev = one speaker of a training session (data/fold<k>/fold.json)" \
    --note "decoding: ${decode_config}, checkpoint ${inference_model}; per-fold details in exp/fold<k>/RESULTS.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
