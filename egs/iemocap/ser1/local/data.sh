#!/usr/bin/env bash
# Data of the IEMOCAP SER baselines: the ENT recipe's folds (--ent_dir, default ../ent1), linked.
#
# data/ here is a symbolic link to <ent_dir>/data, so that every baseline trains, selects and
# tests on the ENT recipe's leave-one-session-out folds (data/fold<k>/{train,dev,test}, with the
# fold's token list data/fold<k>/token_list/). Prepare them first in the ENT recipe:
#   cd <ent_dir> && ./run.sh --iemocap_root DIR --stop_stage 4
# (data preparation, then per fold mixing, validation, CMVN and the token list).
set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

ent_dir=../ent1   # The ENT recipe folder whose folds the baselines share.
nj=4              # Unused here (every local/data.sh takes --nj).

help_message="Usage: $0 [--ent_dir ../ent1]"
. utils/parse_options.sh
if [ $# -ne 0 ]; then
  echo "${help_message}" >&2; exit 2
fi
if [ ! -f "${ent_dir}/data/fold1/train/text" ]; then
  log "Error: ${ent_dir}/data/fold1/train not found: prepare the folds in the ENT recipe first" \
      "(cd ${ent_dir} && ./run.sh --iemocap_root DIR --stop_stage 4)"
  exit 1
fi
if [ -e data ] && [ ! -L data ]; then
  log "Error: data exists and is not a link to ${ent_dir}/data: move it away"; exit 1
fi
ln -sfn "${ent_dir}/data" data
log "data -> ${ent_dir}/data"
