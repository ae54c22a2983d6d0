#!/usr/bin/env bash
# What the cross-validation recipes' run.sh (egs/iemocap/ent1 with ent.sh, egs/iemocap/ser1 with
# ser.sh) do alike, written once: fold k is one run of a stage driver on data/fold<k> into
# exp/fold<k>, as a ${train_cmd} job; the folds' test scores are aggregated into mean ± sd.
# Sourced after utils/stage_lib.sh (log, load_cmd, run_jobs); reads the run.sh options folds,
# fold_nj, stage, stop_stage, python, results and the tags that read_fold_tags sets:
#
#   start_fold_run N "$@"      the start of such a run.sh: its command line logged, its options
#                              (parse_stage_options), check_folds N, resolve_ngpu, load_cmd
#   check_folds N              ${folds}: numbers among 1 ... N, at least one (else exit 2)
#   resolve_ngpu               --ngpu auto: 1 if torch sees a GPU, else 0
#   read_fold_tags DRIVER ARG...
#                              model_tags (the words, each followed by a space) and decode_tag, as
#                              `DRIVER ARG... --show_tags true` prints them
#   run_folds FIRST LAST HINT DRIVER ARG...
#                              when --stage ... --stop_stage meets FIRST ... LAST (the driver's stages,
#                              numbered as the run.sh's): the driver on every fold, its stages there
#                              (ARG...: FOLD stands for the fold number), --fold_nj folds at a time,
#                              each logging to exp/fold<k>/<driver>.log; data/fold<k> must exist
#                              (else "run stage 1 first HINT", exit 1); the last line of each log
#   aggregate_folds STAGE [OPTION...]
#                              python -m ent.bin.aggregate_folds of exp/fold<k>/<model tag>/<decode
#                              tag>/test/scores.json into ${results}

start_fold_run() {  # no local variable: parse_options.sh would take it for an option
  log "$0 ${*:2}"
  parse_stage_options "${@:2}"
  check_folds "$1"
  resolve_ngpu
  load_cmd
}

check_folds() {
  local k all
  all=$(seq -s ' ' 1 "$1")
  for k in ${folds}; do
    case " ${all} " in
      *" ${k} "*) ;;
      *) log "Error: --folds takes numbers among ${all}, got '${k}'"; exit 2 ;;
    esac
  done
  if [ -z "${folds// /}" ]; then
    log "Error: --folds is empty"; exit 2
  fi
}

resolve_ngpu() {
  if [ "${ngpu}" = auto ]; then
    ngpu=$(${python} -c "import torch; print(1 if torch.cuda.is_available() else 0)")
    log "ngpu=auto: using ngpu=${ngpu}"
  fi
}

read_fold_tags() {
  local tags tag dtag
  tags=$("$@" --show_tags true)
  model_tags=""
  decode_tag=""
  while read -r _ tag dtag; do
    [ -n "${tag}" ] || continue
    model_tags+="${tag} "
    decode_tag=${dtag}
  done <<< "${tags}"
}

run_folds() {
  local first=$1 last=$2 hint=$3 driver=$4 name k
  shift 4
  [ "${stage}" -le "${last}" ] && [ "${stop_stage}" -ge "${first}" ] || return 0
  first=$(( stage > first ? stage : first ))
  last=$(( stop_stage < last ? stop_stage : last ))
  name=$(basename "${driver}" .sh)
  for k in ${folds}; do
    if [ ! -f "data/fold${k}/train/text" ]; then
      log "Error: data/fold${k}/train not found: run stage 1 first${hint:+ ${hint}}"; exit 1
    fi
  done
  log "Folds ${folds}: ${name}.sh stages ${first}-${last}, ${fold_nj} at a time (fold k tests on session k;" \
      "sets: data/fold<k>/fold.json; logs: exp/fold<k>/${name}.log)"
  run_jobs "a fold failed (see above)" "${train_cmd}" "${fold_nj}" FOLD="${folds}" "exp/foldFOLD/${name}.log" \
    "${driver}" --stage "${first}" --stop_stage "${last}" "$@"
  for k in ${folds}; do
    log "Fold ${k}: $(tail -n 2 "exp/fold${k}/${name}.log" | head -n 1)"
  done
}

aggregate_folds() {
  log "$1: aggregating folds ${folds} of ${model_tags}-> ${results}"
  shift
  # shellcheck disable=SC2086
  ${python} -m ent.bin.aggregate_folds --expdir exp --folds ${folds} --models ${model_tags} \
    --decode-dir "${decode_tag}" --dataset test --out "${results}" "$@"
}
