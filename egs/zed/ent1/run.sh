#!/usr/bin/env bash
# ZED: emotion diarization (EDER, frame accuracy) and WER of models trained elsewhere
# (by default fold 1 of the IEMOCAP recipe: ENT and FENT), side by side in RESULTS.md.
#
#   ./run.sh --zed_root /corpora/ZED
#   ./run.sh --zed_root /corpora/ZED \
#       --model_dirs "../../iemocap/ent1/exp/fold3/ent_fbank_bpe300_mix ../../iemocap/ent1/exp/fold3/fent_fbank_bpe300_mix"
#   # the wav2vec 2.0 models of the IEMOCAP recipe (conf/train_{ent,fent}_wav2vec2.yaml there):
#   ./run.sh --zed_root /corpora/ZED \
#       --model_dirs "../../iemocap/ent1/exp/fold1/ent_wav2vec2_fbank_bpe300_mix ../../iemocap/ent1/exp/fold1/fent_wav2vec2_fbank_bpe300_mix"
#
# ZED has no training data, so it has no training configs: the models bring
# their own (a packed model with a pretrained front end carries a copy of the
# pretrained model, see `python -m ent.bin.pack_model --help`).
#
# A model dir is a packed model (model.pth, written by stage 11 of ent.sh into
# <model dir>/packed/) or a training dir that holds such a packed/ folder.
#
# Stages:
#   1  data preparation (local/data.sh): data/zed/ with emo_segments
#   2  decoding of data/zed with each model (python -m ent.bin.inference), one ${decode_cmd}
#      job (cmd.sh) per model, its log in exp/<label>/decode_<conf>/zed/decode.log
#   3  scoring (python -m ent.bin.score --diarization) and the side-by-side table
set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
SECONDS=0

stage=1                 # First stage to run.
stop_stage=3            # Last stage to run.
zed_root=""             # The ZED folder (ZED.json and audio; needed by stage 1).
zed_json=""             # Annotation file (default: ${zed_root}/ZED.json).
model_dirs="../../iemocap/ent1/exp/fold1/ent_fbank_bpe300_mix ../../iemocap/ent1/exp/fold1/fent_fbank_bpe300_mix"  # Models to evaluate.
model_names=""          # Row labels, one per model dir (default: <parent>_<dir>, e.g. fold1_ent_fbank_bpe300_mix).
decode_config=conf/decode.yaml  # Decoding options.
emotions="neutral happy angry sad"  # Emotion classes, neutral first.
frame_shift=0.02        # Frame grid (s) of the frame accuracy (ZED's).
ngpu=auto               # GPUs for decoding; auto: 1 if torch sees a GPU, else 0.
nj=1                    # Passed to local/data.sh.
strict=false            # Data preparation stops at the first malformed entry.
python=python3          # Python interpreter.
datadir=data            # Where the data directory is written.
expdir=exp              # Where decodings and scores are written.
results=RESULTS.md      # Side-by-side table.

help_message=$(cat << EOF
Usage: $0 --zed_root DIR [options]

  --stage N               first stage (default: ${stage})
  --stop_stage N          last stage (default: ${stop_stage})
  --zed_root DIR          ZED folder, holding ZED.json and the audio (stage 1)
  --zed_json FILE         annotation file (default: <zed_root>/ZED.json)
  --model_dirs "A B"      models to evaluate (default: "${model_dirs}")
  --model_names "a b"     row labels (default: <parent>_<dir>)
  --decode_config FILE    decoding options (default: ${decode_config})
  --emotions "..."        emotion classes, neutral first (default: "${emotions}")
  --frame_shift S         frame accuracy grid in seconds (default: ${frame_shift})
  --ngpu N|auto           GPUs for decoding (default: ${ngpu})
  --strict true|false     strict data preparation (default: ${strict})
  --python PY             python interpreter (default: ${python})
  --results FILE          side-by-side table (default: ${results})
EOF
)

log "$0 $*"
. utils/parse_options.sh
if [ $# -ne 0 ]; then
  log "Error: unexpected arguments: $*"; echo "${help_message}" >&2; exit 2
fi
# shellcheck disable=SC1091
[ -f ./path.sh ] && . ./path.sh
decode_cmd="utils/run_local.sh"
# shellcheck disable=SC1091
[ -f ./cmd.sh ] && . ./cmd.sh

if [ "${ngpu}" = auto ]; then
  ngpu=$(${python} -c "import torch; print(1 if torch.cuda.is_available() else 0)")
  log "ngpu=auto: using ngpu=${ngpu}"
fi
emotions_csv=${emotions// /,}
decode_tag=$(basename "${decode_config}" .yaml)

# Resolve each model dir to a packed model dir and a row label (needed from stage 2 on).
packed=()
labels=()
if [ "${stop_stage}" -ge 2 ]; then
  read -r -a mdirs <<< "${model_dirs}"
  read -r -a names <<< "${model_names}"
  if [ "${#mdirs[@]}" -eq 0 ]; then
    log "Error: --model_dirs is empty"; exit 2
  fi
  if [ "${#names[@]}" -ne 0 ] && [ "${#names[@]}" -ne "${#mdirs[@]}" ]; then
    log "Error: --model_names has ${#names[@]} names for ${#mdirs[@]} model dirs"; exit 2
  fi
  for i in "${!mdirs[@]}"; do
    m=${mdirs[$i]%/}
    if [ -f "${m}/packed/model.pth" ]; then
      p="${m}/packed"
    elif [ -f "${m}/model.pth" ]; then
      p="${m}"
    elif [ -f "${m}/config.yaml" ]; then
      log "Error: ${m} is a training dir without packed/model.pth: run stage 11 of the recipe that" \
          "trained it (or python -m ent.bin.pack_model from that recipe's folder)"
      exit 1
    else
      log "Error: model dir ${m} not found (or holds no model.pth / packed/model.pth)"; exit 1
    fi
    packed+=("${p}")
    if [ "${#names[@]}" -ne 0 ]; then
      labels+=("${names[$i]}")
    else
      [ "$(basename "${m}")" = packed ] && m=$(dirname "${m}")
      labels+=("$(basename "$(dirname "${m}")")_$(basename "${m}")")
    fi
  done
  dup=$(printf '%s\n' "${labels[@]}" | sort | uniq -d | head -n 1)
  if [ -n "${dup}" ]; then
    log "Error: two models get the label '${dup}': name them with --model_names"; exit 2
  fi
fi

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  if [ -z "${zed_root}" ]; then
    log "Error: stage 1 needs --zed_root DIR (the folder holding ZED.json and the audio)"; exit 2
  fi
  log "Stage 1: data preparation from ${zed_root}"
  local/data.sh --zed_root "${zed_root}" --zed_json "${zed_json}" --nj "${nj}" \
    --datadir "${datadir}" --strict "${strict}" --python "${python}"
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  if [ ! -f "${datadir}/zed/emo_segments" ]; then
    log "Error: ${datadir}/zed not prepared: run stage 1 (--zed_root DIR)"; exit 1
  fi
  for i in "${!packed[@]}"; do
    out="${expdir}/${labels[$i]}/decode_${decode_tag}/zed"
    if [ -f "${out}/.done" ]; then log "Stage 2: ${out} already decoded"; continue; fi
    log "Stage 2: decoding ${datadir}/zed with ${packed[$i]} -> ${out} (log: ${out}/decode.log)"
    if ! ${decode_cmd} "${out}/decode.log" ${python} -m ent.bin.inference --model-dir "${packed[$i]}" \
        --model-file model.pth --config "${decode_config}" --data-dir "${datadir}/zed" --out-dir "${out}" \
        --ngpu "${ngpu}"; then
      log "Error: Stage 2: decoding with ${packed[$i]} failed"; exit 1
    fi
    touch "${out}/.done"
  done
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  rows=()
  for i in "${!packed[@]}"; do
    out="${expdir}/${labels[$i]}/decode_${decode_tag}/zed"
    log "Stage 3: scoring ${labels[$i]} on ZED"
    ${python} -m ent.bin.score --ref-dir "${datadir}/zed" --hyp-dir "${out}" \
      --emotions "${emotions_csv}" --diarization --frame-shift "${frame_shift}" \
      --results "${expdir}/RESULTS.md" --exp-name "${labels[$i]}" --dataset zed \
      --model-dir "${packed[$i]}"
    rows+=("${labels[$i]}=${out}/scores.json")
  done
  ${python} -m ent.bin.compare_scores --scores "${rows[@]}" \
    --metrics EDER FrameAcc WER CER --out "${results}" \
    --title "ZED: emotion diarization and ASR of models trained elsewhere" \
    --note "models: ${model_dirs}" \
    --note "EDER = mean per-utterance emotion diarization error; frame acc on a ${frame_shift} s grid; per-model details in ${expdir}/RESULTS.md"
  log "Wrote ${results}"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
