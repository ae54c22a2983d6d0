#!/usr/bin/env bash
# Data of the mini_emo SER baselines: the ENT recipe's (--ent_dir, default ../ent1), linked.
#
# The baselines train, select and test on exactly the data dirs of ENT and FENT: data/ and
# wav/ here are symbolic links to <ent_dir>/data and <ent_dir>/wav (wav.scp paths are relative to
# the recipe folder). When <ent_dir>/data/train does not exist yet, the ENT recipe's data stages
# run first (cd <ent_dir> && ./run.sh --stop_stage 4: synthesis, mixing, validation and CMVN,
# token list), which belong to the main recipe's budget.
set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}

ent_dir=../ent1   # The ENT recipe folder whose data the baselines share.
nj=2              # Parallel jobs of the ENT data stages (when they run).

help_message="Usage: $0 [--ent_dir ../ent1] [--nj N]"
. utils/parse_options.sh
if [ $# -ne 0 ]; then
  echo "${help_message}" >&2; exit 2
fi
if [ ! -d "${ent_dir}" ]; then
  log "Error: --ent_dir ${ent_dir} not found (the ENT recipe folder, e.g. ../ent1)"; exit 1
fi
if [ ! -f "${ent_dir}/data/train/utt2emo" ] || [ ! -f "${ent_dir}/data/token_list/char/tokens.txt" ]; then
  log "${ent_dir}/data is not prepared: running its data stages (./run.sh --stop_stage 4)"
  (cd "${ent_dir}" && ./run.sh --stop_stage 4 --nj "${nj}")
fi
for name in data wav; do
  if [ -e "${name}" ] && [ ! -L "${name}" ]; then
    log "Error: ${name} exists and is not a link to ${ent_dir}/${name}: move it away"; exit 1
  fi
  if [ -e "${ent_dir}/${name}" ]; then
    ln -sfn "${ent_dir}/${name}" "${name}"
    log "${name} -> ${ent_dir}/${name}"
  fi
done
