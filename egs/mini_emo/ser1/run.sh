#!/usr/bin/env bash
# mini_emo: the field's SER systems as baselines beside ENT and FENT (docs/ser_baselines.md).
#
# One command trains, decodes and scores the five baselines on the ENT recipe's data (../ent1:
# train to train, dev to select, test to test) and writes their rows into RESULTS.md beside
# the ENT and FENT rows of the same test set:
#
#   ./run.sh                        # all five (16 minutes on 2 CPU cores, RESULTS.md)
#   ./run.sh --train_configs conf/train_functional.yaml   # one of them
#   ./run.sh --stage 4              # rescore only
#
# Needs the ENT recipe's data (run first when missing, see local/data.sh) and, for the systems
# on a pretrained ASR encoder (CTA-RNN, the ASR side of the ASR-output fusion), its trained ENT
# model ../ent1/exp/ent_fbank_pitch_char_mix (cd ../ent1 && ./run.sh --stage 7 --stop_stage 9
# --train_configs conf/train_ent.yaml), given to them as model_conf.ent_dir (ser.sh --ent_model_dir). ENT and FENT are scored from their own decodings of
# the same sets (--ent_models; left out with a note when not decoded).
#
# Options: those of ser.sh (./ser.sh --help), and
#   --ent_dir DIR     the ENT recipe folder (default: ../ent1)
set -euo pipefail

ent_dir=../ent1
train_configs="conf/train_functional.yaml conf/train_attention_fcn.yaml conf/train_cta_rnn.yaml
               conf/train_asr_output_fusion.yaml conf/train_multilevel_fusion.yaml"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ent_dir) [ $# -ge 2 ] || { echo "$0: --ent_dir needs a value" >&2; exit 2; }; ent_dir=$2; shift 2 ;;
    --train_configs) [ $# -ge 2 ] || { echo "$0: --train_configs needs a value" >&2; exit 2; }
                     train_configs=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
# Configs of systems not in this checkout yet are left out (with a note), the others run.
configs=""
for config in ${train_configs}; do
  if [ -f "${config}" ]; then configs+="${config} "; else echo "$0: ${config} not found: left out" >&2; fi
done

# ENT and FENT as the main recipe tags them (exp/ent_fbank_pitch_char_mix, exp/fent_fbank_pitch_char_mix...).
ent_models=""
for mdir in "${ent_dir}"/exp/ent_fbank_pitch_char_mix* "${ent_dir}"/exp/fent_fbank_pitch_char_mix*; do
  [ -f "${mdir}/config.yaml" ] && ent_models+="${mdir} "
done
./ser.sh \
    --local_data_opts "--ent_dir ${ent_dir}" \
    --train_set train \
    --valid_set dev \
    --test_sets test \
    --train_configs "${configs}" \
    --train_nj 2 \
    --inference_nj 2 \
    --ent_model_dir "${ent_dir}/exp/ent_fbank_pitch_char_mix" \
    --ent_models "${ent_models}" \
    --ent_decode_tag decode_decode_lm8gram_valid.loss.ave \
    "${args[@]}"
