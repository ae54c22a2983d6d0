#!/usr/bin/env bash
# SER stage driver: the field's speech emotion recognition baselines (ent.models.ser) on a
# recipe's data, beside ENT and FENT. Every SER task folder (egs/<corpus>/ser1) calls it.
#
# It shares the ENT recipe's data dirs, token list and trained ENT model (--ent_dir, default
# ../ent1) and its stage logic, the code of both drivers in utils/stage_lib.sh: the same job runner
# (utils/run_local.sh, cmd.sh), the same model tags, resumption and skipping of finished work, the
# same scorer and RESULTS.md.
#
# Stages:
#   1  Data: local/data.sh makes data/ (normally links to the ENT recipe's data dirs).
#   2  Training of every --train_configs config into exp/<model tag>, --train_nj at a time, as
#      ${train_cmd} jobs (cmd.sh), each logging to exp/<model tag>/train.log:
#        model: functional_classifier  python -m ent.bin.train_ser_functional (eGeMAPS functionals,
#                                       per-speaker z-norm, logistic regression, C chosen on valid)
#        model: <a key of ent.models.ser.SER_MODELS>  python -m ent.bin.train_ser (ESPnet Trainer:
#                                       model selection and checkpoint averaging on valid)
#   3  Decoding of the validation and test sets: python -m ent.bin.ser_inference writes
#      exp/<model tag>/<decode tag>/<set>/{utt2emo,posteriors}, --inference_nj jobs at a time.
#   4  Scoring with python -m ent.bin.score (WA, UA, macro-F1) into --results; with --ent_models,
#      the ENT/FENT decodes of the same sets are scored into the same table; then the summary.
#
# Tags: model tag <config name without train_>[<--train_args folded>] (--model_tag overrides);
#       decode tag decode_<--inference_model without .pth>, e.g. decode_valid.acc_emo.ave.

set -euo pipefail

# log, option parsing, job dispatch, tags and scoring, shared with the ENT driver ent.sh
# (utils/stage_lib.sh of the recipe: egs/TEMPLATE/ent1/utils).
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/utils/stage_lib.sh"

stage=1                # First stage to run.
stop_stage=10000       # Last stage to run.
nj=2                   # Parallel CPU jobs (functional extraction, data preparation).
ngpu=0                 # GPUs for training (0: CPU).
python=python3         # Python interpreter.
datadir=data           # Data dirs.
expdir=exp             # Models and decodes.
show_tags=false        # true: print "<config> <model tag> <decode tag>" per config and exit.
local_data_opts=""     # Options of local/data.sh.
train_set=train        # Training set.
valid_set=dev          # Validation set (model selection, C of the functional baseline; never a test set).
test_sets="test"       # Evaluation sets.
emotions="neutral happy angry sad"  # Emotion classes, neutral first.
token_dir=""           # Token list (default: ${datadir}/token_list/char).
train_configs=""       # One SER baseline per config.
train_args=""          # Options over every neural config's (python -m ent.bin.train_ser), in the model tag.
model_tag=""           # Model tags, one per config, instead of the derived ones.
train_nj=2             # Models trained at a time (each job gets nproc/train_nj threads).
inference_model=valid.acc_emo.ave.pth  # Checkpoint decoded (neural models).
inference_nj=2         # Decoding jobs at a time.
ent_model_dir=""       # The trained ENT experiment dir given to every config whose model_conf has ent_dir
                       # (the frozen ASR encoder of CTA-RNN and the fusion models); empty: the configs'.
ent_models=""          # ENT/FENT model dirs whose decodes of the same sets are scored beside the baselines.
ent_decode_tag=""      # Their decode tag (e.g. decode_decode_lm8gram_valid.loss.ave).
results=RESULTS.md     # Results table.

help_message=$(cat << EOF
Usage: $0 --train_configs "conf/train_a.yaml ..." [options]

  --stage N / --stop_stage N   stages to run (default: ${stage} to ${stop_stage}):
                               1 data, 2 training, 3 decoding, 4 scoring
  --nj N                    parallel CPU jobs (default: ${nj})
  --ngpu N                  GPUs for training (default: ${ngpu})
  --python PY               python interpreter (default: ${python})
  --datadir DIR / --expdir DIR  (default: ${datadir} / ${expdir})
  --show_tags true          print "<config> <model tag> <decode tag>" per model and exit
  --local_data_opts "..."   options of local/data.sh
  --train_set / --valid_set / --test_sets   (default: ${train_set} / ${valid_set} / "${test_sets}")
  --emotions "..."          emotion classes (default: "${emotions}")
  --token_dir DIR           token list (default: <datadir>/token_list/char)
  --train_configs "A B"     one baseline per config (model: functional_classifier or a key of
                            ent.models.ser.SER_MODELS)
  --train_args "..."        options of python -m ent.bin.train_ser over the neural configs' (in the tag)
  --model_tag "a b"         model tags, one per config
  --train_nj N              models trained at a time (default: ${train_nj})
  --inference_model FILE    checkpoint decoded (default: ${inference_model})
  --inference_nj N          decoding jobs at a time (default: ${inference_nj})
  --ent_model_dir DIR       ENT experiment dir for the configs with model_conf.ent_dir (default: theirs)
  --ent_models "DIR ..."    ENT/FENT model dirs scored beside the baselines (default: none)
  --ent_decode_tag TAG      their decode dir name
  --results FILE            results table (default: ${results})
EOF
)

parse_stage_options "$@"
emotions_csv=${emotions// /,}
token_dir=${token_dir:-${datadir}/token_list/char}

read -r -a configs <<< "${train_configs}"
read -r -a train_opts <<< "${train_args}"
if [ "${#configs[@]}" -eq 0 ]; then
  log "Error: no --train_configs"; exit 2
fi
# Each config's model (kind_of) and whether it takes an ENT model (uses_ent: model_conf.ent_dir).
declare -A kind_of uses_ent
for config in "${configs[@]}"; do
  [ -f "${config}" ] || { log "Error: ${config} not found"; exit 2; }
  read -r kind ent <<< "$(${python} -c "import sys, yaml; c = yaml.safe_load(open(sys.argv[1])) or {}; \
print(c.get('model') or '-', 'ent_dir' in (c.get('model_conf') or {}))" "${config}")"
  [ -n "${kind}" ] && [ "${kind}" != - ] || { log "Error: ${config} names no model (model: ...)"; exit 2; }
  kind_of[${config}]=${kind}
  uses_ent[${config}]=${ent}
done
ser_model_tag() {  # ser_model_tag CONFIG: the model tag (the functional baseline takes no --train_args)
  if [ "${kind_of[$1]}" = functional_classifier ]; then config_name "$1"
  else echo "$(config_name "$1")$(fold_args "${train_args}")"; fi
}
assign_model_tags ser_model_tag
inference_tag=$(basename "${inference_model}" .pth)
decode_tag="decode_${inference_tag//\//_}"

show_tags_and_exit
load_cmd
record_run

# The model dir holds a finished model: the checkpoint (neural) or the classifier (functional).
trained() {  # trained CONFIG
  local mdir="${expdir}/${tag_of[$1]}"
  if [ "${kind_of[$1]}" = functional_classifier ]; then
    [ -f "${mdir}/functional_classifier.json" ]
  else
    [ -f "${mdir}/${inference_model}" ]
  fi
}

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  prepare_data
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  for dset in ${train_set} ${valid_set}; do
    [ -f "${datadir}/${dset}/utt2emo" ] || { log "Error: ${datadir}/${dset}/utt2emo not found: run stage 1"; exit 1; }
  done
  threads=$(threads_per_job "${train_nj}")
  jobs=()
  for config in "${configs[@]}"; do
    tag=${tag_of[${config}]}
    mdir="${expdir}/${tag}"
    if trained "${config}"; then log "Stage 2: ${mdir} already trained"; continue; fi
    mkdir -p "${mdir}"
    write_run_sh 2 "${config}" "${mdir}"
    {
      job_script_head "ser.sh (stage 2): the training of ${mdir}"
      echo "export OMP_NUM_THREADS=${threads}"
      if [ "${kind_of[${config}]}" = functional_classifier ]; then
        cs=$(${python} -c "import sys, yaml; print(' '.join(map(str, (yaml.safe_load(open(sys.argv[1])) or {}).get('cs') or [])))" "${config}")
        printf '%q ' ${python} -m ent.bin.train_ser_functional --train-data-dir "${datadir}/${train_set}" \
          --valid-data-dir "${datadir}/${valid_set}" --emotions "${emotions_csv}" --out-dir "${mdir}" \
          --nj "${threads}"
        [ -n "${cs}" ] && printf -- '--cs %s' "${cs}"
        echo
        printf 'cp %q %q\n' "${config}" "${mdir}/config.yaml"
      else
        ent_opts=()
        if [ -n "${ent_model_dir}" ] && [ "${uses_ent[${config}]}" = True ]; then
          [ -f "${ent_model_dir}/config.yaml" ] || { log "Error: --ent_model_dir ${ent_model_dir}: no config.yaml"; exit 1; }
          ent_opts=(--model_conf "ent_dir=${ent_model_dir}")
        fi
        printf '%q ' ${python} -m ent.bin.train_ser --config "${config}" --ngpu "${ngpu}" \
          --train_data_dir "${datadir}/${train_set}" --valid_data_dir "${datadir}/${valid_set}" \
          --token_dir "${token_dir}" --emotions "${emotions_csv}" --output_dir "${mdir}" --resume true \
          "${ent_opts[@]}" "${train_opts[@]}"
        echo
      fi
    } > "${mdir}/train.sh"
    jobs+=("${tag}")
    log "Stage 2: training ${tag} (${kind_of[${config}]}) with ${config} -> ${mdir} (log: ${mdir}/train.log)"
  done
  if [ "${#jobs[@]}" -gt 0 ]; then
    run_jobs "Stage 2: a training failed" "${train_cmd}" "${train_nj}" JOB="${jobs[*]}" "${expdir}/JOB/train.log" \
      bash "${expdir}/JOB/train.sh"
    for tag in "${jobs[@]}"; do
      log "Stage 2: ${tag}: $(tail -n 1 "${expdir}/${tag}/train.log")"
    done
  fi
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  threads=$(threads_per_job "${inference_nj}")
  jobs=()
  for config in "${configs[@]}"; do
    mdir="${expdir}/${tag_of[${config}]}"
    trained "${config}" || { log "Error: Stage 3: ${mdir} is not trained (stage 2)"; exit 1; }
    for dset in ${valid_set} ${test_sets}; do
      out="${mdir}/${decode_tag}/${dset}"
      if [ -f "${out}/.done" ] && [ "${out}/.done" -nt "${mdir}/config.yaml" ]; then
        log "Stage 3: ${out} already decoded"; continue
      fi
      mkdir -p "${out}"
      rm -f "${out}/.done"
      {
        job_script_head "ser.sh (stage 3): the decoding of ${out}"
        printf '%q ' ${python} -m ent.bin.ser_inference --model-dir "${mdir}" --model-file "${inference_model}" \
          --data-dir "${datadir}/${dset}" --out-dir "${out}" --num-threads "${threads}" --nj "${threads}"
        echo
        printf 'touch %q\n' "${out}/.done"
      } > "${out}/decode.sh"
      jobs+=("${out#"${expdir}/"}")
      log "Stage 3: decoding ${datadir}/${dset} with ${mdir} -> ${out}"
    done
  done
  if [ "${#jobs[@]}" -gt 0 ]; then
    run_jobs "Stage 3: a decoding failed" "${decode_cmd}" "${inference_nj}" JOB="${jobs[*]}" "${expdir}/JOB/decode.log" \
      bash "${expdir}/JOB/decode.sh"
  fi
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
  for config in "${configs[@]}"; do
    tag=${tag_of[${config}]}
    mdir="${expdir}/${tag}"
    for dset in ${valid_set} ${test_sets}; do
      log "Stage 4: scoring ${tag}/${decode_tag} on ${dset}"
      score_into_results "${tag}/${decode_tag}" "${mdir}" "${config}" "${dset}" "${mdir}/${decode_tag}/${dset}"
    done
  done
  for mdir in ${ent_models}; do
    for dset in ${valid_set} ${test_sets}; do
      hyp="${mdir}/${ent_decode_tag}/${dset}"
      if [ ! -f "${hyp}/utt2emo" ]; then
        log "Stage 4: ${hyp}/utt2emo not found: $(basename "${mdir}") left out of ${results} on ${dset}"
        continue
      fi
      log "Stage 4: scoring $(basename "${mdir}")/${ent_decode_tag} on ${dset} (ENT recipe)"
      # Score files go to exp/ent_scores/, never into the ENT recipe's decoding dir.
      score_into_results "$(basename "${mdir}")/${ent_decode_tag}" "${mdir}" "${mdir}/config.yaml" "${dset}" "${hyp}" \
        --out-dir "${expdir}/ent_scores/$(basename "${mdir}")/${dset}"
    done
  done
  print_summary
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
