#!/usr/bin/env bash
# IEMOCAP: the field's SER systems as baselines, leave-one-session-out five-fold cross-validation
# on the ENT recipe's folds (../ent1), per-fold WA, UA, macro-F1 and their mean ± standard
# deviation in RESULTS.md, beside ENT and FENT (../ent1/RESULTS.md, same folds and test sets).
#
#   ./run.sh                          # every fold, every baseline
#   ./run.sh --folds "1 2"            # some folds
#   ./run.sh --stage 5                # re-aggregate only
#
# Stages:
#   1    data: data -> ../ent1/data (local/data.sh; the folds come from the ENT recipe:
#        cd ../ent1 && ./run.sh --iemocap_root DIR --stop_stage 4, or its full run)
#   2-4  per fold k, the SER stage driver ser.sh with --datadir data/fold<k> --expdir exp/fold<k>
#        (training with dev-only selection, decoding, scoring), the fold's token list and, for the
#        systems on a pretrained ASR encoder, the fold's own ENT model
#        (../ent1/exp/fold<k>/<--ent_tag>: trained on that fold's training sessions only). Each fold
#        is one ${train_cmd} job (cmd.sh), --fold_nj at a time, its log in exp/fold<k>/ser.log.
#   5    aggregation of exp/fold<k>/<model tag>/<decode tag>/test/scores.json into RESULTS.md
set -euo pipefail

# log, options and job dispatch (utils/stage_lib.sh); the folds (utils/fold_lib.sh), as ../ent1/run.sh.
. utils/stage_lib.sh
. utils/fold_lib.sh

stage=1                # First stage to run.
stop_stage=5           # Last stage to run.
ent_dir=../ent1        # The ENT recipe folder (its folds, token lists and ENT models).
ent_tag=ent_fbank_bpe300_mix   # The ENT model tag in <ent_dir>/exp/fold<k> (frozen ASR encoder).
token_list=bpe300      # The fold's token list, data/fold<k>/token_list/<token_list>.
folds="1 2 3 4 5"      # Folds to run (fold k tests on session k).
fold_nj=1              # Folds run at once.
nj=4                   # Parallel CPU jobs.
ngpu=auto              # GPUs for training; auto: 1 if torch sees a GPU, else 0.
python=python3         # Python interpreter.
train_configs="conf/train_functional.yaml conf/train_attention_fcn.yaml conf/train_cta_rnn.yaml conf/train_asr_output_fusion.yaml conf/train_multilevel_fusion.yaml"
train_args=""          # Options of python -m ent.bin.train_ser over the neural configs' (in the tags).
inference_model=valid.acc_emo.ave.pth  # Checkpoint decoded.
ser_opts=""            # More options of ser.sh.
results=RESULTS.md     # Cross-validation table.

help_message=$(cat << EOF
Usage: $0 [options]

  --stage N / --stop_stage N  stages (default: ${stage} to ${stop_stage}): 1 data, 2-4 ser.sh per fold, 5 aggregation
  --ent_dir DIR             the ENT recipe folder (default: ${ent_dir})
  --ent_tag TAG             ENT model tag per fold, for the ASR-encoder systems (default: ${ent_tag})
  --token_list NAME         token list of each fold (default: ${token_list})
  --folds "1 2 3 4 5"       folds to run (default: "${folds}")
  --fold_nj N               folds run at once (default: ${fold_nj})
  --nj N                    parallel CPU jobs (default: ${nj})
  --ngpu N|auto             GPUs (default: ${ngpu})
  --python PY               python interpreter (default: ${python})
  --train_configs "A B"     one baseline per config (default: the five)
  --train_args "..."        training options over the neural configs' (default: none)
  --inference_model FILE    checkpoint decoded (default: ${inference_model})
  --ser_opts "..."          more ser.sh options (default: none)
  --results FILE            cross-validation table (default: ${results})
EOF
)

start_fold_run 5 "$@"

# The options of every fold's ser.sh run (FOLD: the fold number).
# shellcheck disable=SC2206
ser_args=(
  --nj "${nj}" --ngpu "${ngpu}" --python "${python}"
  --datadir data/foldFOLD --expdir exp/foldFOLD --token_dir "data/foldFOLD/token_list/${token_list}"
  --train_set train --valid_set dev --test_sets test
  --results exp/foldFOLD/RESULTS.md
  --train_configs "${train_configs}" --train_args "${train_args}" --inference_model "${inference_model}"
  --ent_model_dir "${ent_dir}/exp/foldFOLD/${ent_tag}"
  ${ser_opts}
)
# The model and decode tags, as ser.sh derives them (exp/fold<k>/<model tag>/<decode tag>).
read_fold_tags ./ser.sh "${ser_args[@]}"

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  log "Stage 1: data: local/data.sh --ent_dir ${ent_dir}"
  local/data.sh --ent_dir "${ent_dir}"
fi

# Stages 2-4: ser.sh on every fold (exp/fold<k>/ser.log).
run_folds 2 4 "" ./ser.sh "${ser_args[@]}"

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
  aggregate_folds "Stage 5" --metrics WA UA F1 \
    --title "IEMOCAP: SER baselines, leave-one-session-out cross-validation" \
    --note "4 classes (neutral, happy+excited, angry, sad); the folds, dev speakers and test sessions of ${ent_dir} (ENT and FENT: ${ent_dir}/RESULTS.md)" \
    --note "checkpoint ${inference_model} (neural), C chosen on dev (functional); per-fold details in exp/fold<k>/RESULTS.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
