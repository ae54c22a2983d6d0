#!/usr/bin/env bash
# mini_emo: synthetic English emotional speech (eSpeak NG); ENT and FENT,
# from synthesis to RESULTS.md.
# Usage: ./run.sh [--streaming true] [--stage N] [--stop_stage N] [--nj N] [other ent.sh options]
#   --streaming true  also trains the streaming ENT and FENT (conf/train_*_streaming.yaml)
#                     and decodes them with full context and chunk by chunk (160/320/640 ms,
#                     stage 10), side by side in RESULTS.md (about 30 more minutes on 2 cores).
set -euo pipefail

train_set=train
valid_set=dev
test_sets="test test_sed"    # WER, CER and utterance emotion accuracy
sed_sets="test_sed"          # emotion diarization (EDER)
train_configs="conf/train_ent.yaml conf/train_fent.yaml"
streaming_configs="conf/train_ent_streaming.yaml conf/train_fent_streaming.yaml"

streaming=false
args=()
while [ $# -gt 0 ]; do
  if [ "$1" = --streaming ]; then
    [ $# -ge 2 ] || { echo "$0: --streaming needs a value (true or false)" >&2; exit 2; }
    case "$2" in
      true|false) streaming=$2 ;;
      *) echo "$0: --streaming must be true or false, not '$2'" >&2; exit 2 ;;
    esac
    shift 2
  else
    args+=("$1"); shift
  fi
done
stream_opts=()
if [ "${streaming}" = true ]; then
  train_configs="${train_configs} ${streaming_configs}"
  stream_opts=(--streaming_configs "${streaming_configs}" --streaming_chunk_ms "160 320 640")
fi

./ent.sh \
    --train_set "${train_set}" \
    --valid_set "${valid_set}" \
    --test_sets "${test_sets}" \
    --sed_sets "${sed_sets}" \
    --train_configs "${train_configs}" \
    --decode_config conf/decode.yaml \
    --token_type char \
    --feats_type fbank_pitch \
    --lm_order 8 \
    --inference_nj 2 \
    --cmvn_max_utts 500 \
    "${stream_opts[@]}" \
    "${args[@]}"
