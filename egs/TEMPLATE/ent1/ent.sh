#!/usr/bin/env bash
# ENT stage driver: every recipe's run.sh calls this script.
#
# Stages (run with --stage N --stop_stage M; each stage skips finished work):
#   1  Data preparation: local/data.sh writes Kaldi-style data/<set>/ dirs.
#   2  Data augmentation of the training set: speed perturbation (with
#      --speed_perturb_factors), then emotion mixing (with --mix true): new
#      utterances joined from neutral and emotional utterances of one speaker,
#      with the interval of every part in emo_segments, for the training and
#      validation sets (never a test set): <train>_mix, <valid>_mix.
#   3  Validation of every data dir and global CMVN statistics of the training set.
#   4  Token list: sentencepiece model and tokens.txt trained on the training text.
#   5  Training of every model in --train_configs (resumes an interrupted run).
#   6  Decoding of --test_sets (and the validation set) with each model.
#   7  Scoring: WER/CER and emotion accuracy into RESULTS.md.
#   8  Emotion diarization: decoding and EDER scoring of --sed_sets.
#   9  Packing each model into a self-contained directory for ent-transcribe.
#  10  Streaming: chunk-by-chunk decoding and scoring of the test and diarization
#      sets with every --streaming_configs model, beside its full-context greedy row.
#  11  (optional, only with --ssl_cache_configs; runs after stage 4 and before
#      training) SSL feature cache: the hidden states of the frozen pretrained
#      model of each listed config (frontend: ssl, frontend_conf.cache_dir) for
#      every data set, extracted once. Alone: --stage 11 --stop_stage 11.
#  12  (optional, only with --lm_order N > 0; runs after stage 4 and before
#      training, in every run that reaches stage 5 or later) Token n-gram LM
#      (interpolated Kneser-Ney, ARPA) on the training text, fused in beam
#      search with the decoding config's lm_weight and packed with each model.

set -euo pipefail

log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
min() { local a b; a=$1; for b in "$@"; do [ "${b}" -lt "${a}" ] && a="${b}"; done; echo "${a}"; }
SECONDS=0

# General options
stage=1              # First stage to run.
stop_stage=10000     # Last stage to run.
nj=2                 # Parallel jobs for CPU work (synthesis, statistics).
ngpu=0               # GPUs for training and decoding (0: CPU).
python=python3       # Python interpreter.
datadir=data         # Where data dirs are written.
expdir=exp           # Where statistics, models and decodes are written.

# Data options
local_data_opts=""        # Options passed to local/data.sh.
train_set=train           # Training set name.
valid_set=dev             # Validation set (model selection; never a test set).
test_sets="test"          # Evaluation sets, space separated.
speed_perturb_factors=""  # e.g. "0.9 1.0 1.1"; empty: no speed perturbation.
emotions="neutral happy angry sad"  # Emotion classes, neutral first.

sed_sets=""               # Diarization sets (with emo_segments), space separated.

# Emotion mixing (stage 2): frame-level emotion from utterance labels
mix=false                 # true: train and validate on <set>_mix (originals + same-speaker mixes).
mix_share=0.5             # Mixed utterances per original utterance of the training set.
mix_valid_share=""        # The same for the validation set (default: --mix_share).
mix_max_duration=20       # Longest mixed utterance in seconds.
mix_patterns="ne,en,nen"  # Patterns: ne (neutral+emotional), en, nen.
mix_pattern_weights=""    # Their odds, e.g. "1,1,2" (default: equal).
mix_seed=0                # Random seed of the mixing (same seed: same corpus).
mix_opts=""               # More options of python -m ent.bin.mix_data_dir (e.g. "--gap-s 0.1").

# Training and decoding options
train_configs="conf/train_ent.yaml"  # One model per config, space separated.
decode_config=conf/decode.yaml       # Decoding options.
inference_model=valid.loss.ave.pth   # Checkpoint to decode with (in the model dir).
inference_nj=1                       # Parallel decoding jobs (one per model and set; the CPU threads are split among them).
pack_ssl_model=copy                  # Stage 9, frontend ssl: copy the pretrained model into the pack, or record its absolute path.
results=RESULTS.md                   # Results table, updated per model and set.
streaming_configs=""                 # Models (among --train_configs) to decode in streaming mode.
streaming_chunk_ms="320"             # Chunk sizes for streaming decoding, space separated.

# Feature options
n_mels=80                 # Log-mel fbank dimension (computed on the fly).
feats_type=fbank          # fbank, or fbank_pitch: fbank + log F0 and NCCF (configs with frontend_conf.pitch: true).
cmvn_max_utts=0           # Utterances used for CMVN statistics (0: all).
ssl_cache_configs=""      # Stage 11: configs whose SSL hidden states are cached (frontend_conf.cache_dir).

# Language model options
lm_order=0                # Stage 12: order of the token n-gram LM for beam search (0: no LM).
lm_train_text=""          # Its training text(s) (default: the training set's text).

# Tokenizer options
token_type=bpe            # char, bpe or unigram.
nbpe=200                  # Vocabulary size for bpe and unigram.
text_case=lower           # Case normalization of transcripts: lower, upper or keep.

help_message=$(cat << EOF2
Usage: $0 [options]

  --stage N                 first stage to run (default: ${stage})
  --stop_stage N            last stage to run (default: ${stop_stage})
  --nj N                    parallel CPU jobs (default: ${nj})
  --ngpu N                  GPUs for training/decoding (default: ${ngpu})
  --python PY               python interpreter (default: ${python})
  --datadir DIR             data dirs (default: ${datadir})
  --expdir DIR              experiment dir (default: ${expdir})
  --local_data_opts "..."   options for local/data.sh (default: "${local_data_opts}")
  --train_set NAME          training set (default: ${train_set})
  --valid_set NAME          validation set (default: ${valid_set})
  --test_sets "A B"         evaluation sets (default: "${test_sets}")
  --speed_perturb_factors   e.g. "0.9 1.0 1.1" (default: none)
  --sed_sets "A B"          diarization sets with emo_segments (default: "${sed_sets}")
  --mix true|false          stage 2: train and validate on <set>_mix, the originals and mixes of
                            neutral and emotional utterances of one speaker (default: ${mix})
  --mix_share P             mixed utterances per original training utterance (default: ${mix_share})
  --mix_valid_share P       the same for the validation set (default: --mix_share)
  --mix_max_duration S      longest mixed utterance in seconds (default: ${mix_max_duration})
  --mix_patterns "ne,en,nen"  mixing patterns (default: ${mix_patterns})
  --mix_pattern_weights "1,1,2"  their odds (default: equal)
  --mix_seed N              mixing seed (default: ${mix_seed})
  --mix_opts "..."          more options of python -m ent.bin.mix_data_dir (default: "${mix_opts}")
  --train_configs "A B"     one training config per model (default: "${train_configs}")
  --decode_config FILE      decoding options (default: ${decode_config})
  --inference_model FILE    checkpoint to decode with (default: ${inference_model})
  --inference_nj N          parallel decoding jobs, each a model and a set (default: ${inference_nj})
  --pack_ssl_model MODE     stage 9, pretrained front ends: copy or absolute (default: ${pack_ssl_model})
  --results FILE            results table (default: ${results})
  --streaming_configs "A B" models to decode chunk by chunk (default: "${streaming_configs}")
  --streaming_chunk_ms "N"  streaming chunk sizes in ms (default: "${streaming_chunk_ms}")
  --emotions "..."          emotion classes, neutral first (default: "${emotions}")
  --n_mels N                fbank dimension (default: ${n_mels})
  --feats_type TYPE         fbank or fbank_pitch (CMVN statistics with the 2 pitch features of
                            frontend_conf.pitch: true) (default: ${feats_type})
  --cmvn_max_utts N         utterances for CMVN statistics, 0 = all (default: ${cmvn_max_utts})
  --ssl_cache_configs "A B" stage 11: cache the SSL hidden states of these configs (default: none)
  --lm_order N              stage 12: token n-gram LM order, 0 = no LM (default: ${lm_order})
  --lm_train_text "A B"     LM training text files (default: the training set's text)
  --token_type TYPE         char, bpe or unigram (default: ${token_type})
  --nbpe N                  vocabulary size for bpe/unigram (default: ${nbpe})
  --text_case CASE          lower, upper or keep (default: ${text_case})

Stages:
  1  data preparation (local/data.sh)
  2  data augmentation: speed perturbation (--speed_perturb_factors), emotion mixing (--mix true)
  3  validation of data dirs and CMVN statistics
  4  token list
  5  training
  6  decoding
  7  scoring
  8  emotion diarization decoding and scoring
  9  model packing
  10 streaming decoding and scoring
  11 SSL feature cache (optional: --ssl_cache_configs; runs between stages 4 and 5)
  12 token n-gram LM (optional: --lm_order N; runs between stages 4 and 5 in any
     run that reaches stage 5 or later)
EOF2
)

log "$0 $*"
run_args=$(printf '%q ' "$0" "$@")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "${here}/utils/parse_options.sh"
if [ $# -ne 0 ]; then
  log "Error: unexpected arguments: $*"; echo "${help_message}" >&2; exit 2
fi
[ -f ./path.sh ] && . ./path.sh

emotions_csv=${emotions// /,}
if [ -n "${speed_perturb_factors}" ]; then
  train_sp_set="${train_set}_sp"
else
  train_sp_set="${train_set}"
fi
case "${mix}" in
  true) train_fit_set="${train_sp_set}_mix"; valid_fit_set="${valid_set}_mix" ;;
  false) train_fit_set="${train_sp_set}"; valid_fit_set="${valid_set}" ;;
  *) echo "$0: --mix must be true or false, not '${mix}'" >&2; exit 2 ;;
esac
if [ "${token_type}" = char ]; then
  token_dir="${datadir}/token_list/char"
else
  token_dir="${datadir}/token_list/${token_type}${nbpe}"
fi
case "${feats_type}" in
  fbank) stats_dir="${expdir}/stats_fbank${n_mels}"; pitch_opts=() ;;
  fbank_pitch) stats_dir="${expdir}/stats_fbank${n_mels}_pitch"; pitch_opts=(--pitch) ;;
  *) echo "$0: --feats_type must be fbank or fbank_pitch, not '${feats_type}'" >&2; exit 2 ;;
esac

lm_file="${expdir}/lm_$(basename "${token_dir}")_${lm_order}gram/lm.arpa"
lm_opts=()
[ "${lm_order}" -gt 0 ] && lm_opts=(--lm "${lm_file}")

mkdir -p "${expdir}"
echo "${run_args}" >> "${expdir}/run.sh.log"

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  log "Stage 1: data preparation: local/data.sh --nj ${nj} ${local_data_opts}"
  if [ ! -x local/data.sh ]; then
    log "Error: local/data.sh not found or not executable in $(pwd)"; exit 1
  fi
  # Every local/data.sh accepts --nj; recipe-specific options follow.
  # shellcheck disable=SC2086
  local/data.sh --nj "${nj}" ${local_data_opts}
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  if [ -n "${speed_perturb_factors}" ]; then
    log "Stage 2: speed perturbation of ${datadir}/${train_set}: factors ${speed_perturb_factors}"
    ${python} -m ent.bin.speed_perturb_data_dir \
      --data-dir "${datadir}/${train_set}" --out-dir "${datadir}/${train_sp_set}" \
      --factors ${speed_perturb_factors} --nj "${nj}"
  else
    log "Stage 2: speed perturbation skipped (no --speed_perturb_factors)"
  fi
  if [ "${mix}" = true ]; then
    mix_args=(--max-duration "${mix_max_duration}" --patterns "${mix_patterns}" --seed "${mix_seed}"
              --emotions "${emotions_csv}" --neutral "${emotions%% *}" --nj "${nj}")
    [ -n "${mix_pattern_weights}" ] && mix_args+=(--pattern-weights "${mix_pattern_weights}")
    # Training and validation sets only: a test set is never mixed.
    for triple in "${train_sp_set}:${train_fit_set}:${mix_share}" \
                  "${valid_set}:${valid_fit_set}:${mix_valid_share:-${mix_share}}"; do
      IFS=: read -r src dst share <<< "${triple}"
      log "Stage 2: emotion mixing of ${datadir}/${src} -> ${datadir}/${dst} (share ${share}, patterns ${mix_patterns})"
      # shellcheck disable=SC2086
      ${python} -m ent.bin.mix_data_dir --data-dir "${datadir}/${src}" --out-dir "${datadir}/${dst}" \
        --mix-share "${share}" "${mix_args[@]}" ${mix_opts}
    done
  fi
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  for dset in $(echo ${train_fit_set} ${valid_fit_set} ${valid_set} ${test_sets} | tr ' ' '\n' | awk '!seen[$0]++'); do
    dir="${datadir}/${dset}"
    stamp="${dir}/.validated"
    if [ -f "${stamp}" ] && [ -z "$(find "${dir}" -maxdepth 1 -type f -newer "${stamp}" ! -name '.*')" ]; then
      log "Stage 3: ${dir} already validated"
      continue
    fi
    log "Stage 3: validating ${dir}"
    ${python} -m ent.bin.validate_data_dir "${dir}" --emotions "${emotions_csv}"
    touch "${stamp}"
  done
  log "Stage 3: CMVN statistics of ${datadir}/${train_sp_set} -> ${stats_dir}/feats_stats.npz"
  cmvn_opts=()
  [ "${cmvn_max_utts}" -gt 0 ] && cmvn_opts+=(--max-utts "${cmvn_max_utts}")
  ${python} -m ent.bin.compute_cmvn_stats --data-dir "${datadir}/${train_sp_set}" \
    --out "${stats_dir}/feats_stats.npz" --n-mels "${n_mels}" "${pitch_opts[@]}" --nj "${nj}" "${cmvn_opts[@]}"
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
  log "Stage 4: ${token_type} token list from ${datadir}/${train_set}/text -> ${token_dir}"
  ${python} -m ent.bin.train_tokenizer --text "${datadir}/${train_set}/text" \
    --token-type "${token_type}" --nbpe "${nbpe}" --case "${text_case}" --out-dir "${token_dir}"
fi

# -----------------------------------------------------------------------------
# Stage 11 (optional): SSL feature cache. Numbered after the others but placed
# here so that, in a full run, the cache exists before training (stage 5).
# Only runs with --ssl_cache_configs; each config must use `frontend: ssl` with
# a frozen model and name its cache in frontend_conf.cache_dir. Utterances
# already cached are skipped, so rerunning it is cheap.
# -----------------------------------------------------------------------------
if [ "${stage}" -le 11 ] && [ "${stop_stage}" -ge 11 ] && [ -n "${ssl_cache_configs}" ]; then
  cache_dirs=()
  for dset in $(echo ${train_fit_set} ${valid_fit_set} ${valid_set} ${test_sets} ${sed_sets} | tr ' ' '\n' | awk '!seen[$0]++'); do
    cache_dirs+=("${datadir}/${dset}")
  done
  device=cpu
  [ "${ngpu}" -gt 0 ] && device=cuda
  for config in ${ssl_cache_configs}; do
    log "Stage 11: SSL feature cache of ${config} for ${cache_dirs[*]} (device ${device})"
    ${python} -m ent.bin.extract_ssl_features --config "${config}" --data-dir "${cache_dirs[@]}" \
      --device "${device}"
  done
fi

# -----------------------------------------------------------------------------
# Stage 12 (optional): token n-gram LM, placed here like stage 11 so that it
# exists before decoding: it runs with --lm_order N > 0 whenever the run reaches
# training or later (--stop_stage >= 5), and is skipped while lm.arpa is newer
# than the token list and its training text (about a second otherwise).
# -----------------------------------------------------------------------------
if [ "${stage}" -le 12 ] && [ "${stop_stage}" -ge 5 ] && [ "${lm_order}" -gt 0 ]; then
  lm_texts=${lm_train_text:-${datadir}/${train_set}/text}
  lm_fresh=true
  for f in ${lm_texts} "${token_dir}/tokens.txt"; do
    [ -f "${lm_file}" ] && [ "${lm_file}" -nt "${f}" ] || lm_fresh=false
  done
  if [ "${lm_fresh}" = true ]; then
    log "Stage 12: ${lm_file} already trained"
  else
    log "Stage 12: ${lm_order}-gram ${token_type} LM on ${lm_texts} -> ${lm_file}"
    # shellcheck disable=SC2086
    ${python} -m ent.bin.train_lm --token-dir "${token_dir}" --text ${lm_texts} \
      --valid-text "${datadir}/${valid_set}/text" --order "${lm_order}" --out "${lm_file}"
  fi
fi

model_tag() { local b; b=$(basename "$1" .yaml); echo "${b#train_}"; }
decode_tag=$(basename "${decode_config}" .yaml)

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
  for config in ${train_configs}; do
    tag=$(model_tag "${config}")
    mdir="${expdir}/${tag}"
    if [ -f "${mdir}/${inference_model}" ]; then
      log "Stage 5: ${mdir} already trained"
      continue
    fi
    log "Stage 5: training ${tag} with ${config} -> ${mdir} (log: ${mdir}/train.log)"
    mkdir -p "${mdir}"
    ${python} -m ent.bin.train --config "${config}" --ngpu "${ngpu}" \
      --train_data_dir "${datadir}/${train_fit_set}" --valid_data_dir "${datadir}/${valid_fit_set}" \
      --token_dir "${token_dir}" --emotions "${emotions_csv}" \
      --normalize_conf "stats_file=${stats_dir}/feats_stats.npz" \
      --output_dir "${mdir}" --resume true 2> >(tee -a "${mdir}/train.log" | \
        grep --line-buffered -E "epoch results|ERROR|Error|Traceback" >&2)
  done
fi

# Decoding jobs: decode_job MODEL_DIR SET OUT_DIR runs in the background when
# --inference_nj > 1 (its log in OUT_DIR/decode.log) and waits for the oldest
# job once that many run; wait_decode_jobs waits for the rest. A failed job
# stops the run and shows its log.
decode_pids=()
decode_logs=()
if [ "${inference_nj}" -lt 1 ]; then
  log "Error: --inference_nj must be >= 1, got ${inference_nj}"; exit 2
fi
decode_threads=$(( $(nproc) / inference_nj )); [ "${decode_threads}" -ge 1 ] || decode_threads=1
decode_one() {
  local mdir=$1 dset=$2 out=$3
  ${python} -m ent.bin.inference --model-dir "${mdir}" --model-file "${inference_model}" \
    --config "${decode_config}" "${lm_opts[@]}" --data-dir "${datadir}/${dset}" --out-dir "${out}" \
    --ngpu "${ngpu}" --num-threads "${decode_threads}" && touch "${out}/.done"
}
wait_decode_job() {
  if ! wait "${decode_pids[0]}"; then
    log "Error: decoding failed; the end of ${decode_logs[0]}:"; tail -n 20 "${decode_logs[0]}" >&2; exit 1
  fi
  decode_pids=("${decode_pids[@]:1}"); decode_logs=("${decode_logs[@]:1}")
}
decode_job() {
  local mdir=$1 dset=$2 out=$3
  if [ "${inference_nj}" -le 1 ]; then decode_one "${mdir}" "${dset}" "${out}"; return; fi
  mkdir -p "${out}"
  decode_one "${mdir}" "${dset}" "${out}" > "${out}/decode.log" 2>&1 &
  decode_pids+=($!); decode_logs+=("${out}/decode.log")
  [ "${#decode_pids[@]}" -lt "${inference_nj}" ] || wait_decode_job
}
wait_decode_jobs() { while [ "${#decode_pids[@]}" -gt 0 ]; do wait_decode_job; done; }

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
  for config in ${train_configs}; do
    mdir="${expdir}/$(model_tag "${config}")"
    for dset in ${valid_set} ${test_sets}; do
      out="${mdir}/decode_${decode_tag}/${dset}"
      if [ -f "${out}/.done" ]; then log "Stage 6: ${out} already decoded"; continue; fi
      log "Stage 6: decoding ${datadir}/${dset} with ${mdir}/${inference_model} -> ${out}"
      decode_job "${mdir}" "${dset}" "${out}"
    done
  done
  wait_decode_jobs
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
  for config in ${train_configs}; do
    tag=$(model_tag "${config}")
    mdir="${expdir}/${tag}"
    for dset in ${valid_set} ${test_sets}; do
      log "Stage 7: scoring ${tag} on ${dset}"
      ${python} -m ent.bin.score --ref-dir "${datadir}/${dset}" \
        --hyp-dir "${mdir}/decode_${decode_tag}/${dset}" --emotions "${emotions_csv}" \
        --results "${results}" --exp-name "${tag}" --dataset "${dset}"
    done
  done
fi

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ] && [ -n "${sed_sets}" ]; then
  for config in ${train_configs}; do
    tag=$(model_tag "${config}")
    mdir="${expdir}/${tag}"
    for dset in ${sed_sets}; do
      out="${mdir}/decode_${decode_tag}/${dset}"
      if [ ! -f "${out}/.done" ]; then
        log "Stage 8: diarization decoding of ${datadir}/${dset} with ${tag}"
        decode_job "${mdir}" "${dset}" "${out}"
        wait_decode_jobs
      fi
      log "Stage 8: diarization scoring of ${tag} on ${dset}"
      ${python} -m ent.bin.score --ref-dir "${datadir}/${dset}" --hyp-dir "${out}" \
        --emotions "${emotions_csv}" --diarization \
        --results "${results}" --exp-name "${tag}" --dataset "${dset}"
    done
  done
fi

if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ]; then
  for config in ${train_configs}; do
    mdir="${expdir}/$(model_tag "${config}")"
    log "Stage 9: packing ${mdir} -> ${mdir}/packed"
    ${python} -m ent.bin.pack_model --model-dir "${mdir}" --model-file "${inference_model}" \
      --out-dir "${mdir}/packed" --ssl-model "${pack_ssl_model}" \
      --decode-config "${decode_config}" "${lm_opts[@]}"
  done
  if [ -f "${results}" ]; then
    ${python} -m ent.bin.score --print-summary "${results}"
  fi
fi

if [ "${stage}" -le 10 ] && [ "${stop_stage}" -ge 10 ] && [ -n "${streaming_configs}" ]; then
  eval_sets=$(echo ${test_sets} ${sed_sets} | tr ' ' '\n' | sort -u)
  for config in ${streaming_configs}; do
    tag=$(model_tag "${config}")
    mdir="${expdir}/${tag}"
    # Frame emotions are the per-frame decisions of the whole utterance's search
    # in every row (no smoothing and no pieces, which need the whole utterance),
    # so that full context and streams compare.
    for chunk in full ${streaming_chunk_ms}; do
      if [ "${chunk}" = full ]; then
        sopts=(); name="${tag}_greedy"
      else
        sopts=(--streaming --chunk-ms "${chunk}"); name="${tag}_stream${chunk}"
      fi
      for dset in ${eval_sets}; do
        out="${mdir}/decode_${decode_tag}_${name#"${tag}"_}/${dset}"
        if [ ! -f "${out}/.done" ]; then
          log "Stage 10: ${name} decoding of ${datadir}/${dset}"
          ${python} -m ent.bin.inference --model-dir "${mdir}" --model-file "${inference_model}" \
            --config "${decode_config}" --search greedy --frame-switch-penalty 0 --frame-emotion-pause 0 \
            --lm-weight 0 --token-bonus 0 "${sopts[@]}" \
            --data-dir "${datadir}/${dset}" --out-dir "${out}" --ngpu "${ngpu}"
          touch "${out}/.done"
        fi
        dia=()
        case " ${sed_sets} " in *" ${dset} "*) dia=(--diarization) ;; esac
        ${python} -m ent.bin.score --ref-dir "${datadir}/${dset}" --hyp-dir "${out}" \
          --emotions "${emotions_csv}" "${dia[@]}" --results "${results}" --exp-name "${name}" \
          --dataset "${dset}"
      done
    done
  done
  [ -f "${results}" ] && ${python} -m ent.bin.score --print-summary "${results}"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
