#!/usr/bin/env bash
# mini_emo: synthetic English emotional speech (eSpeak NG); ENT and FENT,
# from synthesis to RESULTS.md.
#
# Training sees utterance labels only, as with a real corpus: frame emotions
# are learnt from same-speaker mixes of neutral and emotional utterances
# (stage 2, --mix true) and the ranked lattice loss (conf/train_*.yaml).
#
# Usage: ./run.sh [--oracle_intervals true] [--streaming true] [--stage N] [--stop_stage N]
#                 [other ent.sh options]
#   Stages: those of ent.sh (./ent.sh --help), e.g. --stage 7 --stop_stage 9 to train, decode and
#   score; the models in exp/<config>_fbank_pitch_char_mix (e.g. exp/ent_fbank_pitch_char_mix), decoded in
#   exp/<model>/decode_decode_lm8gram_valid.loss.ave/<set>.
#   --oracle_intervals true  train ent_oracle and fent_oracle (conf/tuning/train_*_oracle.yaml)
#                     on the synthesizer's exact speech intervals of every train/dev utterance
#                     (data/{train,dev}_oracle) instead: an upper bound that no real corpus
#                     allows, reported as such in RESULTS.md (about 25 minutes on 2 cores).
#   --streaming true  also trains the streaming ENT and FENT (conf/train_*_streaming.yaml)
#                     and decodes them with full context and chunk by chunk (160/320/640 ms,
#                     stage 12), side by side in RESULTS.md (about 30 more minutes on 2 cores).
set -euo pipefail

train_set=train
valid_set=dev
test_sets="test test_sed"    # WER, CER and utterance emotion accuracy
sed_sets="dev_mix test_sed"  # emotion diarization (EDER); dev_mix: the mixes of dev (model choices)
train_configs="conf/train_ent.yaml conf/train_fent.yaml"
decode_config=conf/decode.yaml
streaming_configs="conf/train_ent_streaming.yaml conf/train_fent_streaming.yaml"

streaming=false
oracle_intervals=false
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --streaming|--oracle_intervals)
      name=${1#--}
      [ $# -ge 2 ] || { echo "$0: $1 needs a value (true or false)" >&2; exit 2; }
      case "$2" in
        true|false) printf -v "${name}" '%s' "$2" ;;
        *) echo "$0: $1 must be true or false, not '$2'" >&2; exit 2 ;;
      esac
      shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
# Mixing (stage 2): 400 mixes beside the 2000 training utterances (about 45 % more audio),
# 100 beside the 200 dev ones; each part keeps its level (one voice, one "recording setup":
# the loudness differences are the emotions'), and the emotional part's label covers its
# speech only. Chosen on dev_mix (RESULTS.md).
mix_opts=(--mix true --mix_share 0.2 --mix_valid_share 0.5 --mix_max_duration 20
          --mix_opts "--no-loudness-match --trim-db 35")
data_opts=()
if [ "${oracle_intervals}" = true ]; then
  if [ "${streaming}" = true ]; then
    echo "$0: --oracle_intervals true and --streaming true are separate runs" >&2; exit 2
  fi
  train_set=train_oracle
  valid_set=dev_oracle
  sed_sets="test_sed"
  train_configs="conf/tuning/train_ent_oracle.yaml conf/tuning/train_fent_oracle.yaml"
  decode_config=conf/tuning/decode_oracle.yaml  # switch penalty of the oracle models (RESULTS.md)
  mix_opts=(--mix false)
  data_opts=(--local_data_opts "--oracle_intervals true")
fi
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
    --decode_config "${decode_config}" \
    --token_type char \
    --feats_type fbank_pitch \
    --lm_order 8 \
    --inference_nj 2 \
    --cmvn_max_utts 500 \
    "${mix_opts[@]}" \
    "${data_opts[@]}" \
    "${stream_opts[@]}" \
    "${args[@]}"
