#!/usr/bin/env bash
# SER stage driver: the field's speech emotion recognition baselines (ent.models.ser) on a
# recipe's data, beside ENT and FENT. Every SER task folder (egs/<corpus>/ser1) calls it.
#
# It shares the ENT recipe's data dirs, token list and trained ENT model (--ent_dir, default
# ../ent1) and its stage logic: the same job runner (utils/run_local.sh, cmd.sh), the same model
# tags, resumption and skipping of finished work, the same scorer and RESULTS.md.
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

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0

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

run_args=$(printf '%q ' "$0" "$@")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "${here}/utils/parse_options.sh"
if [ $# -ne 0 ]; then
  log "Error: unexpected arguments: $*"; echo "${help_message}" >&2; exit 2
fi
[ -f ./path.sh ] && . ./path.sh
emotions_csv=${emotions// /,}
token_dir=${token_dir:-${datadir}/token_list/char}

fold_args() { printf '%s' "$1" | sed -e 's/--/_/g' -e 's/[^A-Za-z0-9._+-]//g'; }
read -r -a configs <<< "${train_configs}"
read -r -a model_tags <<< "${model_tag}"
read -r -a train_opts <<< "${train_args}"
if [ "${#configs[@]}" -eq 0 ]; then
  log "Error: no --train_configs"; exit 2
fi
if [ "${#model_tags[@]}" -ne 0 ] && [ "${#model_tags[@]}" -ne "${#configs[@]}" ]; then
  log "Error: --model_tag has ${#model_tags[@]} tags for ${#configs[@]} --train_configs"; exit 2
fi
declare -A tag_of kind_of uses_ent
for i in "${!configs[@]}"; do
  config=${configs[$i]}
  [ -f "${config}" ] || { log "Error: ${config} not found"; exit 2; }
  read -r kind ent <<< "$(${python} -c "import sys, yaml; c = yaml.safe_load(open(sys.argv[1])) or {}; \
print(c.get('model') or '-', 'ent_dir' in (c.get('model_conf') or {}))" "${config}")"
  [ "${kind}" != - ] || kind=""
  uses_ent[${config}]=${ent}
  [ -n "${kind}" ] || { log "Error: ${config} names no model (model: ...)"; exit 2; }
  kind_of[${config}]=${kind}
  if [ "${#model_tags[@]}" -ne 0 ]; then
    tag=${model_tags[$i]}
  else
    tag=$(basename "${config}" .yaml)
    tag=${tag#train_}
    [ "${kind}" = functional_classifier ] || tag+=$(fold_args "${train_args}")
  fi
  if [[ ! "${tag}" =~ ^[A-Za-z0-9._+-]+$ ]]; then
    log "Error: model tag '${tag}' of ${config}: only letters, digits and . _ + -"; exit 2
  fi
  for other in "${tag_of[@]}"; do
    [ "${other}" != "${tag}" ] || { log "Error: two --train_configs get the model tag ${tag}"; exit 2; }
  done
  tag_of[${config}]=${tag}
done
inference_tag=$(basename "${inference_model}" .pth)
decode_tag="decode_${inference_tag//\//_}"

if [ "${show_tags}" = true ]; then
  for config in "${configs[@]}"; do echo "${config} ${tag_of[${config}]} ${decode_tag}"; done
  exit 0
fi
log "$0 $*"

train_cmd="utils/run_local.sh"
decode_cmd="utils/run_local.sh"
# shellcheck disable=SC1091
[ -f ./cmd.sh ] && . ./cmd.sh
mkdir -p "${expdir}"
echo "${run_args}" >> "${expdir}/run.sh.log"

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
  log "Stage 1: data: local/data.sh ${local_data_opts}"
  # shellcheck disable=SC2086
  local/data.sh --nj "${nj}" ${local_data_opts}
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  for dset in ${train_set} ${valid_set}; do
    [ -f "${datadir}/${dset}/utt2emo" ] || { log "Error: ${datadir}/${dset}/utt2emo not found: run stage 1"; exit 1; }
  done
  threads=$(( $(nproc) / train_nj )); [ "${threads}" -ge 1 ] || threads=1
  jobs=()
  for config in "${configs[@]}"; do
    tag=${tag_of[${config}]}
    mdir="${expdir}/${tag}"
    if trained "${config}"; then log "Stage 2: ${mdir} already trained"; continue; fi
    mkdir -p "${mdir}"
    {
      echo '#!/usr/bin/env bash'
      echo "# Written by ser.sh (stage 2): the training of ${mdir}, run from $(pwd)."
      echo 'set -euo pipefail'
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
    if ! ${train_cmd} --max_jobs_run "${train_nj}" JOB="$(IFS=,; echo "${jobs[*]}")" "${expdir}/JOB/train.log" \
        bash "${expdir}/JOB/train.sh"; then
      log "Error: Stage 2: a training failed"; exit 1
    fi
    for tag in "${jobs[@]}"; do
      log "Stage 2: ${tag}: $(tail -n 1 "${expdir}/${tag}/train.log")"
    done
  fi
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  threads=$(( $(nproc) / inference_nj )); [ "${threads}" -ge 1 ] || threads=1
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
        echo '#!/usr/bin/env bash'
        echo "# Written by ser.sh (stage 3): the decoding of ${out}, run from $(pwd)."
        echo 'set -euo pipefail'
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
    if ! ${decode_cmd} --max_jobs_run "${inference_nj}" JOB="$(IFS=,; echo "${jobs[*]}")" "${expdir}/JOB/decode.log" \
        bash "${expdir}/JOB/decode.sh"; then
      log "Error: Stage 3: a decoding failed"; exit 1
    fi
  fi
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
  for config in "${configs[@]}"; do
    tag=${tag_of[${config}]}
    mdir="${expdir}/${tag}"
    for dset in ${valid_set} ${test_sets}; do
      log "Stage 4: scoring ${tag}/${decode_tag} on ${dset}"
      ${python} -m ent.bin.score --ref-dir "${datadir}/${dset}" --hyp-dir "${mdir}/${decode_tag}/${dset}" \
        --emotions "${emotions_csv}" --results "${results}" --exp-name "${tag}/${decode_tag}" \
        --dataset "${dset}" --model-dir "${mdir}" --config "${config}"
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
      ${python} -m ent.bin.score --ref-dir "${datadir}/${dset}" --hyp-dir "${hyp}" \
        --out-dir "${expdir}/ent_scores/$(basename "${mdir}")/${dset}" --emotions "${emotions_csv}" --results "${results}" \
        --exp-name "$(basename "${mdir}")/${ent_decode_tag}" --dataset "${dset}" --model-dir "${mdir}" \
        --config "${mdir}/config.yaml"
    done
  done
  [ -f "${results}" ] && ${python} -m ent.bin.score --print-summary "${results}"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
