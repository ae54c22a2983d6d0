#!/usr/bin/env bash
# Data preparation of ZED (Zaion Emotion Dataset) for emotion diarization evaluation.
#
# Run from the recipe folder (egs/zed/ent1). Reads ${zed_root}/ZED.json
# ({id: {wav, duration, emotion: [{emo, start, end}], transcription}}) and the audio
# it names, and writes ${datadir}/zed/ (wav.scp, text, utt2spk, spk2utt, utt2emo,
# utt2dur, emo_segments: the happy/sad/angry intervals, the rest neutral) and
# ${datadir}/zed_prep_report.txt (what was read, kept and dropped, and why).
# Rules: python -m ent.bin.prepare_zed --help and ent/corpora/zed.py.
set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0

zed_root=""       # The ZED folder (audio and ZED.json). Required.
zed_json=""       # The annotation file (default: ${zed_root}/ZED.json).
nj=1              # Accepted as every local/data.sh does; unused.
datadir=data      # Where the data directory is written.
strict=false      # true: stop at the first malformed entry instead of counting it.
python=python3    # Python interpreter.

help_message=$(cat << EOF
Usage: $0 --zed_root DIR [options]
Prepare ZED into ${datadir}/zed/.

Options (default in brackets):
  --zed_root DIR        the ZED folder, holding ZED.json and the audio (required)
  --zed_json FILE       annotation file [\${zed_root}/ZED.json]
  --nj N                accepted for the stage driver; unused [${nj}]
  --datadir DIR         where the data dir is written [${datadir}]
  --strict true|false   stop at the first malformed entry [${strict}]
  --python PY           python interpreter [${python}]
EOF
)

if [ ! -f utils/parse_options.sh ]; then
  log "Error: run $0 from the recipe folder (utils/parse_options.sh not found in $(pwd))"
  exit 1
fi
. utils/parse_options.sh

if [ $# -ne 0 ]; then
  log "Error: unexpected arguments: $*"; echo "${help_message}" >&2; exit 2
fi
if [ "${strict}" != true ] && [ "${strict}" != false ]; then
  log "Error: --strict must be true or false, got '${strict}'"; exit 2
fi
if [ -z "${zed_root}" ]; then
  log "Error: --zed_root DIR is required (the folder holding ZED.json and the audio)"
  echo "${help_message}" >&2
  exit 2
fi
if [ ! -d "${zed_root}" ]; then
  log "Error: ZED folder ${zed_root} not found"; exit 1
fi

# shellcheck disable=SC1091
[ -f ./path.sh ] && . ./path.sh

opts=(--zed-root "${zed_root}" --out-dir "${datadir}/zed")
[ -n "${zed_json}" ] && opts+=(--json "${zed_json}")
[ "${strict}" = true ] && opts+=(--strict)
log "${python} -m ent.bin.prepare_zed ${opts[*]}"
${python} -m ent.bin.prepare_zed "${opts[@]}"
log "Report: ${datadir}/zed_prep_report.txt"
log "Successfully finished. [elapsed=${SECONDS}s]"
