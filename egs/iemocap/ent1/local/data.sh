#!/usr/bin/env bash
# Data preparation of IEMOCAP for leave-one-session-out cross-validation.
#
# Run from the recipe folder (egs/iemocap/ent1). Reads the release layout
#   ${iemocap_root}/Session{1..5}/dialog/EmoEvaluation/*.txt      labels
#   ${iemocap_root}/Session{1..5}/dialog/transcriptions/*.txt     transcripts
#   ${iemocap_root}/Session{1..5}/sentences/wav/<dialog>/<utt>.wav audio
# and writes
#   ${datadir}/session{1..5}/          one data dir per session (4 classes: neutral,
#                                      happy + excited, angry, sad; 5531 utterances in
#                                      the full release before the empty-transcript drop)
#   ${datadir}/iemocap_prep_report.txt what was read, kept and dropped, and why
#   ${datadir}/fold{1..5}/{train,dev,test}/  fold k tests on session k; dev is one
#                                      speaker of a training session (Ses05M, Ses01F,
#                                      Ses02M, Ses03F, Ses04M for folds 1-5), left out
#                                      of train; the test session is never used for
#                                      model or epoch selection.
# Label mapping and text normalization: python -m ent.bin.prepare_iemocap --help and
# the docstring of ent/corpora/iemocap.py. Finished work (same options) is skipped.
set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0

iemocap_root=""   # The IEMOCAP release root (holds Session1 ... Session5). Required.
nj=1              # Accepted as every local/data.sh does; preparation reads only file headers.
datadir=data      # Where the data directories are written.
strict=false      # true: stop at the first unparseable line instead of counting it.
dev_speakers=""   # Dev speaker overrides, e.g. "1=Ses05F 5=Ses04F" (default: the rule above).
force=false       # true: prepare again even if finished.
python=python3    # Python interpreter.

help_message=$(cat << EOF
Usage: $0 --iemocap_root DIR [options]
Prepare IEMOCAP into ${datadir}/session{1..5}/ and the folds ${datadir}/fold{1..5}/{train,dev,test}/.

Options (default in brackets):
  --iemocap_root DIR      IEMOCAP release root, holding Session1 ... Session5 (required)
  --nj N                  accepted for the stage driver; unused [${nj}]
  --datadir DIR           where data dirs are written [${datadir}]
  --strict true|false     stop at the first unparseable line [${strict}]
  --dev_speakers "K=SPK"  dev speaker overrides per fold [none]
  --force true|false      prepare again even if finished [${force}]
  --python PY             python interpreter [${python}]
EOF
)

if [ ! -f utils/parse_options.sh ]; then
  log "Error: run $0 from the recipe folder (utils/parse_options.sh not found in $(pwd))"
  exit 1
fi
. utils/parse_options.sh

if [ $# -ne 0 ]; then
  log "Error: unexpected arguments: $*"
  echo "${help_message}" >&2
  exit 2
fi
for flag in strict force; do
  if [ "${!flag}" != true ] && [ "${!flag}" != false ]; then
    log "Error: --${flag} must be true or false, got '${!flag}'"
    exit 2
  fi
done
if [ -z "${iemocap_root}" ]; then
  log "Error: --iemocap_root DIR is required (the folder holding Session1 ... Session5)"
  echo "${help_message}" >&2
  exit 2
fi
if [ ! -d "${iemocap_root}/Session1" ]; then
  log "Error: ${iemocap_root}/Session1 not found: --iemocap_root must name the IEMOCAP release root"
  exit 1
fi

# shellcheck disable=SC1091
[ -f ./path.sh ] && . ./path.sh

root_abs=$(cd "${iemocap_root}" && pwd)
signature="root=${root_abs} strict=${strict} dev_speakers=${dev_speakers}"
stamp="${datadir}/.iemocap_prepared"
if [ "${force}" = false ] && [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${signature}" ]; then
  log "IEMOCAP already prepared in ${datadir}/ (${signature}); --force true to redo"
  exit 0
fi
rm -f "${stamp}"

prep_opts=(--iemocap-root "${root_abs}" --out-dir "${datadir}")
[ "${strict}" = true ] && prep_opts+=(--strict)
log "Preparing sessions: ${python} -m ent.bin.prepare_iemocap ${prep_opts[*]}"
${python} -m ent.bin.prepare_iemocap "${prep_opts[@]}"

fold_opts=(--data-dir "${datadir}")
for item in ${dev_speakers}; do
  fold_opts+=(--dev-speaker "${item}")
done
log "Writing folds: ${python} -m ent.bin.make_folds ${fold_opts[*]}"
${python} -m ent.bin.make_folds "${fold_opts[@]}"

echo "${signature}" > "${stamp}"
log "Report: ${datadir}/iemocap_prep_report.txt"
log "Successfully finished. [elapsed=${SECONDS}s]"
