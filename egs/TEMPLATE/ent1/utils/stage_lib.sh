#!/usr/bin/env bash
# What the stage drivers (ent.sh, ser.sh) and the recipes' run.sh do alike, written once.
# Sourced, never run: `. utils/stage_lib.sh` (a driver: from the folder it is linked into).
# Sourcing it starts the clock of "elapsed" (SECONDS=0) and defines:
#
#   log MESSAGE...             a line "<time> (<file>:<line>:<function>) MESSAGE" naming the caller
#   parse_stage_options "$@"   the --name value options of the script (utils/parse_options.sh) into
#                              the variables declared before the call; any other argument is an error
#                              (the help to stderr, exit 2); then ./path.sh. Sets run_args, the
#                              command line as given, quoted.
#   show_tags_and_exit         with --show_tags true: "<config> <model tag> <decode tag>" per config
#                              (configs, tag_of, decode_tag), then exit 0
#   record_run                 the command line (run_args) into the log and ${expdir}/run.sh.log
#   load_cmd                   train_cmd and decode_cmd, the job runners: utils/run_local.sh,
#                              unless ./cmd.sh sets them
#   run_jobs WHAT CMD NJ NAME="V ..." LOG COMMAND...
#                              COMMAND as jobs of the runner CMD, one per word V (NAME in LOG and
#                              in COMMAND replaced by it), NJ at a time; when one fails (the runner
#                              shows its log): "Error: WHAT" and exit 1
#   threads_per_job NJ         the CPU threads of each of NJ jobs at a time: nproc / NJ, at least 1
#   job_script_head WHAT       the first lines of a job script: bash, strict mode, "Written by WHAT"
#   fold_args "OPTIONS"        options folded into a tag: "--max_epoch 3 --loss_conf a=0.5"
#                              -> "_max_epoch3_loss_confa0.5"
#   config_name CONFIG         the config's file name without .yaml and a leading train_
#   assign_model_tags DERIVE   configs (the words of ${train_configs}) and tag_of[CONFIG], their
#                              model tags: the words of ${model_tag} (one per config), else what
#                              `DERIVE CONFIG` prints; a tag is letters, digits and . _ + -, no two
#                              configs share one (else exit 2)
#   write_run_sh STAGE CONFIG MODEL_DIR
#                              MODEL_DIR/run.sh: this run's command line (run_args), then the
#                              options that rerun CONFIG's model alone from its training STAGE on
#   prepare_data               stage 1: local/data.sh --nj ${nj} ${local_data_opts}
#   score_into_results NAME MODEL_DIR CONFIG SET HYP_DIR [OPTION...]
#                              python -m ent.bin.score of HYP_DIR against ${datadir}/SET, its rows
#                              into ${results} under NAME (the model's dir and config recorded)
#   print_summary              the summary of ${results}, when there is one
#
# They read the drivers' options (python, nj, datadir, results, emotions_csv, ...) where they say so.

SECONDS=0
_stage_utils=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

parse_stage_options() {
  run_args=$(printf '%q ' "$0" "$@")
  # shellcheck disable=SC1091
  . "${_stage_utils}/parse_options.sh"
  if [ $# -ne 0 ]; then
    log "Error: unexpected arguments: $*"; echo "${help_message}" >&2; exit 2
  fi
  # shellcheck disable=SC1091
  if [ -f ./path.sh ]; then . ./path.sh; fi
}

show_tags_and_exit() {
  local config
  if [ "${show_tags}" = true ]; then
    for config in "${configs[@]}"; do echo "${config} ${tag_of[${config}]} ${decode_tag}"; done
    exit 0
  fi
}

record_run() {
  log "${run_args}"
  mkdir -p "${expdir}"
  echo "${run_args}" >> "${expdir}/run.sh.log"
}

load_cmd() {
  train_cmd="utils/run_local.sh"
  decode_cmd="utils/run_local.sh"
  # shellcheck disable=SC1091
  if [ -f ./cmd.sh ]; then . ./cmd.sh; fi
}

run_jobs() {
  local what=$1 cmd=$2 nj=$3 name=${4%%=*} log_file=$5
  local -a values
  read -r -a values <<< "${4#*=}"
  shift 5
  # shellcheck disable=SC2086
  if ! ${cmd} --max_jobs_run "${nj}" "${name}=$(IFS=,; echo "${values[*]}")" "${log_file}" "$@"; then
    log "Error: ${what}"; exit 1
  fi
}

threads_per_job() {
  local threads=$(( $(nproc) / $1 ))
  [ "${threads}" -ge 1 ] || threads=1
  echo "${threads}"
}

job_script_head() {
  echo '#!/usr/bin/env bash'
  echo "# Written by $1, run from $(pwd)."
  echo 'set -euo pipefail'
}

fold_args() { printf '%s' "$1" | sed -e 's/--/_/g' -e 's/[^A-Za-z0-9._+-]//g'; }

config_name() {
  local name
  name=$(basename "$1" .yaml)
  echo "${name#train_}"
}

assign_model_tags() {
  local derive=$1 i config tag other
  local -a tags
  read -r -a configs <<< "${train_configs}"
  read -r -a tags <<< "${model_tag}"
  if [ "${#tags[@]}" -ne 0 ] && [ "${#tags[@]}" -ne "${#configs[@]}" ]; then
    log "Error: --model_tag has ${#tags[@]} tags for ${#configs[@]} --train_configs"; exit 2
  fi
  declare -gA tag_of=()
  for i in "${!configs[@]}"; do
    config=${configs[$i]}
    if [ "${#tags[@]}" -ne 0 ]; then
      tag=${tags[$i]}
    else
      tag=$("${derive}" "${config}")
    fi
    if [[ ! "${tag}" =~ ^[A-Za-z0-9._+-]+$ ]]; then
      log "Error: model tag '${tag}' of ${config}: only letters, digits and . _ + - (see --model_tag)"; exit 2
    fi
    for other in "${tag_of[@]}"; do
      [ "${other}" != "${tag}" ] || { log "Error: two --train_configs get the model tag ${tag}"; exit 2; }
    done
    tag_of[${config}]=${tag}
  done
}

write_run_sh() {
  local train_stage=$1 config=$2 mdir=$3 only
  only="--stage ${train_stage} --train_configs $(printf '%q' "${config}")"
  [ -n "${model_tag}" ] && only+=" --model_tag $(printf '%q' "$(basename "${mdir}")")"
  {
    echo '#!/usr/bin/env bash'
    echo "# Written by ${0##*/} (stage ${train_stage}) on $(date '+%Y-%m-%dT%H:%M:%S'): the command that made this"
    echo "# experiment, then the options that rerun this model alone from training on; more options"
    echo "# may follow (e.g. ./run.sh --stop_stage N)."
    printf 'cd %q\n' "$(pwd)"
    echo "${run_args}${only} \"\$@\"; exit \$?"
  } > "${mdir}/run.sh"
  chmod +x "${mdir}/run.sh"
}

prepare_data() {
  log "Stage 1: data preparation: local/data.sh --nj ${nj} ${local_data_opts}"
  if [ ! -x local/data.sh ]; then
    log "Error: local/data.sh not found or not executable in $(pwd)"; exit 1
  fi
  # Every local/data.sh accepts --nj; recipe-specific options follow.
  # shellcheck disable=SC2086
  local/data.sh --nj "${nj}" ${local_data_opts}
}

score_into_results() {
  local name=$1 mdir=$2 config=$3 dset=$4 hyp=$5
  shift 5
  ${python} -m ent.bin.score --ref-dir "${datadir}/${dset}" --hyp-dir "${hyp}" --emotions "${emotions_csv}" \
    "$@" --results "${results}" --exp-name "${name}" --dataset "${dset}" --model-dir "${mdir}" --config "${config}"
}

print_summary() {
  if [ -f "${results}" ]; then ${python} -m ent.bin.score --print-summary "${results}"; fi
}
