#!/usr/bin/env bash
# ENT stage driver: every recipe's run.sh calls this script.
#
# Stages, in run order (--stage N --stop_stage M runs every stage N <= S <= M;
# an optional stage runs only when its option is set; each stage skips finished
# work whose inputs are unchanged):
#   1  Data preparation: local/data.sh writes Kaldi-style data/<set>/ dirs.
#   2  Data augmentation of the training set: speed perturbation (with
#      --speed_perturb_factors), then emotion mixing (with --mix true): new
#      utterances joined from neutral and emotional utterances of one speaker,
#      with the interval of every part in emo_segments, for the training and
#      validation sets (never a test set): <train>_mix, <valid>_mix.
#   3  Validation of every data dir and global CMVN statistics of the training set.
#   4  Token list: sentencepiece model and tokens.txt trained on the training text.
#   5  (optional, --ssl_cache_configs) SSL feature cache: the hidden states of the
#      frozen pretrained model of each listed config (frontend: ssl,
#      frontend_conf.cache_dir) for every data set, extracted once.
#   6  (optional, --lm_order N > 0) Token n-gram LM (interpolated Kneser-Ney, ARPA)
#      on the training text, fused in beam search with the decoding config's
#      lm_weight and packed with each model.
#   7  Training of every model in --train_configs into exp/<model tag> (resumes an
#      interrupted run); exp/<model tag>/run.sh reruns it.
#   8  Decoding of the validation set and --test_sets with each model into
#      exp/<model tag>/<decode tag>/<set>, as ${decode_cmd} jobs (cmd.sh).
#   9  Scoring: WER/CER and emotion accuracy into RESULTS.md.
#  10  (optional, --sed_sets) Emotion diarization: decoding and EDER scoring.
#  11  Packing each model into a self-contained directory for ent-transcribe.
#  12  (optional, --streaming_configs) Streaming: chunk-by-chunk decoding and
#      scoring of the test and diarization sets, beside the full-context greedy row.
#
# Tags (as ESPnet's asr.sh), from what changes the result:
#   model tag   <config name without train_>_<feats_type>_<char|bpe<nbpe>|unigram<nbpe>>[_sp][_mix][<--train_args folded>]
#               e.g. exp/ent_fbank_pitch_char_mix; --model_tag overrides it.
#   decode tag  decode_<decode config name>[<--inference_args folded>]_<lm<order>gram|nolm>_<checkpoint name>
#               e.g. decode_decode_lm8gram_valid.loss.ave
#   Folding: "--max_epoch 3 --loss_conf lattice_weight=0.5" -> _max_epoch3_loss_conflattice_weight0.5

set -euo pipefail

# log, option parsing, job dispatch, tags and scoring, shared with the SER driver ser.sh.
# shellcheck disable=SC1091
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/utils/stage_lib.sh"

# General options
stage=1              # First stage to run.
stop_stage=10000     # Last stage to run.
nj=2                 # Parallel jobs for CPU work (synthesis, statistics).
ngpu=0               # GPUs for training and decoding (0: CPU); training on more than 1 is DDP.
num_nodes=1          # Stage 7: machines training one model together (> 1: with --dist_launcher torchrun).
dist_launcher=""     # Stage 7: "" (ESPnet starts one DDP process per GPU) or torchrun.
nproc_per_node=""    # Stage 7, torchrun: processes per node (default: --ngpu; on the CPU: 1, gloo DDP).
rdzv_endpoint=""     # Stage 7, torchrun with --num_nodes > 1: host:port of the rendezvous (one node of the job).
python=python3       # Python interpreter.
datadir=data         # Where data dirs are written.
expdir=exp           # Where statistics, models and decodes are written.
show_tags=false      # true: print "<config> <model tag> <decode tag>" per model and exit.

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
train_args=""                        # Training options over the configs' (e.g. "--max_epoch 3 --loss_conf lattice_weight=0.5"), in the model tag.
model_tag=""                         # Model tags, one per config, instead of the derived ones.
decode_config=conf/decode.yaml       # Decoding options.
inference_args=""                    # Options of python -m ent.bin.inference over the decoding config's (e.g. "--beam 8"), in the decode tag.
inference_model=valid.loss.ave.pth   # Checkpoint to decode with (in the model dir).
inference_nj=1                       # Decoding jobs at a time (one per model and set; the CPU threads are split among them).
pack_ssl_model=copy                  # Stage 11, frontend ssl: copy the pretrained model into the pack, or record its absolute path.
results=RESULTS.md                   # Results table, updated per model and set.
streaming_configs=""                 # Models (among --train_configs) to decode in streaming mode.
streaming_chunk_ms="320"             # Chunk sizes for streaming decoding, space separated.

# Feature options
n_mels=80                 # Log-mel fbank dimension (computed on the fly).
feats_type=fbank          # fbank, or fbank_pitch: fbank + log F0 and NCCF (configs with frontend_conf.pitch: true).
cmvn_max_utts=0           # Utterances used for CMVN statistics (0: all).
ssl_cache_configs=""      # Stage 5: configs whose SSL hidden states are cached (frontend_conf.cache_dir).

# Language model options
lm_order=0                # Stage 6: order of the token n-gram LM for beam search (0: no LM).
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
  --ngpu N                  GPUs for training/decoding; training on N > 1 is DDP (default: ${ngpu})
  --num_nodes M             stage 7: machines training together, with --dist_launcher torchrun
                            and the same command on every machine (default: ${num_nodes})
  --dist_launcher L         stage 7: "" (one DDP process per GPU, started by ESPnet) or torchrun
                            (default: "${dist_launcher}")
  --nproc_per_node N        stage 7, torchrun: processes per machine (default: --ngpu; on the CPU
                            (--ngpu 0) 1, and N > 1 trains with DDP over gloo)
  --rdzv_endpoint HOST:PORT stage 7, torchrun with --num_nodes > 1: rendezvous address, one machine
                            of the job (default: none)
  --python PY               python interpreter (default: ${python})
  --datadir DIR             data dirs (default: ${datadir})
  --expdir DIR              experiment dir (default: ${expdir})
  --show_tags true          print "<config> <model tag> <decode tag>" per model and exit
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
  --train_args "..."        training options over the configs', e.g. "--max_epoch 3 --loss_conf
                            lattice_weight=0.5" (in the model tag; default: none)
  --model_tag "a b"         model tags, one per config (default: derived, see Tags)
  --decode_config FILE      decoding options (default: ${decode_config})
  --inference_args "..."    options of python -m ent.bin.inference over the decoding config's,
                            e.g. "--beam 8" (in the decode tag; default: none)
  --inference_model FILE    checkpoint to decode with (default: ${inference_model})
  --inference_nj N          decoding jobs at a time, each a model and a set (default: ${inference_nj})
  --pack_ssl_model MODE     stage 11, pretrained front ends: copy or absolute (default: ${pack_ssl_model})
  --results FILE            results table (default: ${results})
  --streaming_configs "A B" models to decode chunk by chunk (default: "${streaming_configs}")
  --streaming_chunk_ms "N"  streaming chunk sizes in ms (default: "${streaming_chunk_ms}")
  --emotions "..."          emotion classes, neutral first (default: "${emotions}")
  --n_mels N                fbank dimension (default: ${n_mels})
  --feats_type TYPE         fbank or fbank_pitch (CMVN statistics with the 2 pitch features of
                            frontend_conf.pitch: true) (default: ${feats_type})
  --cmvn_max_utts N         utterances for CMVN statistics, 0 = all (default: ${cmvn_max_utts})
  --ssl_cache_configs "A B" stage 5: cache the SSL hidden states of these configs (default: none)
  --lm_order N              stage 6: token n-gram LM order, 0 = no LM (default: ${lm_order})
  --lm_train_text "A B"     LM training text files (default: the training set's text)
  --token_type TYPE         char, bpe or unigram (default: ${token_type})
  --nbpe N                  vocabulary size for bpe/unigram (default: ${nbpe})
  --text_case CASE          lower, upper or keep (default: ${text_case})

Stages (a stage S runs when --stage <= S <= --stop_stage, an optional one only with its option):
  1  data preparation (local/data.sh)
  2  data augmentation: speed perturbation (--speed_perturb_factors), emotion mixing (--mix true)
  3  validation of data dirs and CMVN statistics
  4  token list
  5  SSL feature cache (optional: --ssl_cache_configs)
  6  token n-gram LM (optional: --lm_order N > 0)
  7  training
  8  decoding
  9  scoring
  10 emotion diarization decoding and scoring (optional: --sed_sets)
  11 model packing
  12 streaming decoding and scoring (optional: --streaming_configs)

Tags:
  exp/<model tag>: <config name without train_>_<feats_type>_<char|bpe<nbpe>>[_sp][_mix][<train_args>],
    e.g. exp/ent_fbank_pitch_char_mix
  <decode tag>: decode_<decode config name>[<inference_args>]_<lm<order>gram|nolm>_<checkpoint>,
    e.g. decode_decode_lm8gram_valid.loss.ave
  (options folded: "--max_epoch 3" -> _max_epoch3)

Jobs: decoding runs as \${decode_cmd} jobs, set in ./cmd.sh (default: utils/run_local.sh).
EOF2
)

parse_stage_options "$@"

# Stage 7's launcher: torchrun_opts (torchrun's options) and dist_opts (ESPnet's
# distributed options). --ngpu N > 1 alone: ESPnet starts N DDP processes
# (--multiprocessing_distributed true); torchrun: it starts them, on every one of
# --num_nodes machines, each process with one GPU (or the CPU).
torchrun_opts=()
dist_opts=(--ngpu "${ngpu}")
case "${dist_launcher}" in
  "")
    if [ "${num_nodes}" -ne 1 ] || [ -n "${nproc_per_node}" ] || [ -n "${rdzv_endpoint}" ]; then
      echo "$0: --num_nodes, --nproc_per_node and --rdzv_endpoint need --dist_launcher torchrun" >&2; exit 2
    fi
    [ "${ngpu}" -gt 1 ] && dist_opts+=(--multiprocessing_distributed true)
    ;;
  torchrun)
    if [ "${ngpu}" -gt 0 ]; then
      if [ -n "${nproc_per_node}" ] && [ "${nproc_per_node}" -ne "${ngpu}" ]; then
        echo "$0: with GPUs torchrun starts one process per GPU: --nproc_per_node must be --ngpu (${ngpu})" >&2; exit 2
      fi
      nproc_per_node=${ngpu}
      dist_opts=(--ngpu 1 --dist_backend nccl)
    else
      nproc_per_node=${nproc_per_node:-1}
      dist_opts=(--ngpu 0 --dist_backend gloo)
    fi
    dist_opts+=(--multiprocessing_distributed false)
    if [ "${num_nodes}" -gt 1 ]; then
      if [ -z "${rdzv_endpoint}" ]; then
        echo "$0: --num_nodes ${num_nodes} needs --rdzv_endpoint HOST:PORT (one machine of the job)" >&2; exit 2
      fi
      torchrun_opts=(--nnodes "${num_nodes}" --rdzv_backend c10d --rdzv_endpoint "${rdzv_endpoint}")
    else
      torchrun_opts=(--standalone)
    fi
    torchrun_opts+=(--nproc_per_node "${nproc_per_node}")
    ;;
  *) echo "$0: --dist_launcher must be empty or torchrun, not '${dist_launcher}'" >&2; exit 2 ;;
esac

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

# Tags (see the header): what changes a model or a decoding names its directory.
if [ "${token_type}" = char ]; then token_tag=char; else token_tag="${token_type}${nbpe}"; fi
ent_model_tag() {  # ent_model_tag CONFIG: the model tag derived from the config and the options
  local tag
  tag="$(config_name "$1")_${feats_type}_${token_tag}"
  [ -n "${speed_perturb_factors}" ] && tag+=_sp
  [ "${mix}" = true ] && tag+=_mix
  echo "${tag}$(fold_args "${train_args}")"
}
assign_model_tags ent_model_tag
model_tag_of() { echo "${tag_of[$1]}"; }
for config in ${streaming_configs}; do
  if [ -z "${tag_of[${config}]+set}" ]; then
    log "Error: --streaming_configs: ${config} is not among --train_configs"; exit 2
  fi
done
inference_tag=$(basename "${inference_model}" .pth)
inference_tag=${inference_tag//\//_}
decode_base="decode_$(basename "${decode_config}" .yaml)$(fold_args "${inference_args}")"
if [ "${lm_order}" -gt 0 ]; then lm_tag="lm${lm_order}gram"; else lm_tag=nolm; fi
decode_tag="${decode_base}_${lm_tag}_${inference_tag}"
# inference_args as words, passed after the decoding config (their values win).
read -r -a inference_opts <<< "${inference_args}"
read -r -a train_opts <<< "${train_args}"

show_tags_and_exit
# Job dispatch (cmd.sh: train_cmd, decode_cmd); the local runner by default.
load_cmd
if [ "${inference_nj}" -lt 1 ]; then
  log "Error: --inference_nj must be >= 1, got ${inference_nj}"; exit 2
fi
record_run

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  prepare_data
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  if [ -n "${speed_perturb_factors}" ]; then
    log "Stage 2: speed perturbation of ${datadir}/${train_set}: factors ${speed_perturb_factors}"
    ${python} -m ent.bin.speed_perturb_data_dir \
      --src "${datadir}/${train_set}" --dst "${datadir}/${train_sp_set}" \
      --audio-dir "${datadir}/${train_sp_set}_wav" --factors ${speed_perturb_factors} --nj "${nj}"
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
# Stage 5 (optional): SSL feature cache, before training. Only runs with
# --ssl_cache_configs; each config must use `frontend: ssl` with a frozen model
# and name its cache in frontend_conf.cache_dir. Utterances already cached are
# skipped, so rerunning it is cheap.
# -----------------------------------------------------------------------------
if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ] && [ -n "${ssl_cache_configs}" ]; then
  cache_dirs=()
  for dset in $(echo ${train_fit_set} ${valid_fit_set} ${valid_set} ${test_sets} ${sed_sets} | tr ' ' '\n' | awk '!seen[$0]++'); do
    cache_dirs+=("${datadir}/${dset}")
  done
  device=cpu
  [ "${ngpu}" -gt 0 ] && device=cuda
  for config in ${ssl_cache_configs}; do
    log "Stage 5: SSL feature cache of ${config} for ${cache_dirs[*]} (device ${device})"
    ${python} -m ent.bin.extract_ssl_features --config "${config}" --data-dir "${cache_dirs[@]}" \
      --device "${device}"
  done
fi

# -----------------------------------------------------------------------------
# Stage 6 (optional): token n-gram LM, with --lm_order N > 0; skipped while
# lm.arpa.stamp records the same training texts, token list and order
# (content-keyed, python -m ent.bin.stamp).
# -----------------------------------------------------------------------------
if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ] && [ "${lm_order}" -gt 0 ]; then
  lm_texts=${lm_train_text:-${datadir}/${train_set}/text}
  # shellcheck disable=SC2206
  lm_stamp_args=(--file ${lm_texts} "${token_dir}/tokens.txt" "${token_dir}/bpe.model" "${datadir}/${valid_set}/text"
                 --value "order=${lm_order}")
  if [ -f "${lm_file}" ] && lm_stale=$(${python} -m ent.bin.stamp check "${lm_file}.stamp" "${lm_stamp_args[@]}"); then
    log "Stage 6: ${lm_file} already trained"
  else
    [ -f "${lm_file}" ] && log "Stage 6: training again: ${lm_stale}"
    log "Stage 6: ${lm_order}-gram ${token_type} LM on ${lm_texts} -> ${lm_file}"
    # shellcheck disable=SC2086
    ${python} -m ent.bin.train_lm --token-dir "${token_dir}" --text ${lm_texts} \
      --valid-text "${datadir}/${valid_set}/text" --order "${lm_order}" --out "${lm_file}"
    ${python} -m ent.bin.stamp write "${lm_file}.stamp" "${lm_stamp_args[@]}"
  fi
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
  for config in "${configs[@]}"; do
    tag=$(model_tag_of "${config}")
    mdir="${expdir}/${tag}"
    if [ -f "${mdir}/${inference_model}" ]; then
      log "Stage 7: ${mdir} already trained"
      continue
    fi
    log "Stage 7: training ${tag} with ${config}${train_args:+ and ${train_args}} -> ${mdir} (log: ${mdir}/train.log)"
    mkdir -p "${mdir}"
    write_run_sh 7 "${config}" "${mdir}"
    if [ "${dist_launcher}" = torchrun ]; then  # the machines' torchruns meet in this model's rendezvous
      launch=(${python} -m torch.distributed.run "${torchrun_opts[@]}" --rdzv_id "${tag}" -m ent.bin.train)
    else
      launch=(${python} -m ent.bin.train)
    fi
    "${launch[@]}" --config "${config}" "${dist_opts[@]}" \
      --train_data_dir "${datadir}/${train_fit_set}" --valid_data_dir "${datadir}/${valid_fit_set}" \
      --token_dir "${token_dir}" --emotions "${emotions_csv}" \
      --normalize_conf "stats_file=${stats_dir}/feats_stats.npz" \
      --output_dir "${mdir}" --resume true "${train_opts[@]}" 2> >(tee -a "${mdir}/train.log" | \
        grep --line-buffered -E "epoch results|ERROR|Error|Traceback" >&2)
  done
fi

# Decoding jobs. queue_decode OUT MODEL_DIR SET COMMAND... writes OUT/decode.sh
# (COMMAND, then the stamp OUT/.done); run_decode_jobs STAGE [N] runs the queued
# ones as ${decode_cmd} jobs, N (default --inference_nj) at a time, each logging
# to OUT/decode.log. A failed job stops the run (the runner shows its log).
# decoded OUT MODEL_DIR SET COMMAND...: OUT/.done records the content (SHA-256)
# of the checkpoint, the model's config.yaml, the decoding config, the LM and the
# set's wav.scp, segments, utt2spk and text, and the command line (without
# --num-threads): a retrained model, an edited config or LM, changed data or other
# options decode again; a file only touched or copied does not.
decode_queue=()
decode_threads=$(threads_per_job "${inference_nj}")
decode_stamp_args() {  # decode_stamp_args MODEL_DIR SET COMMAND...: sets stamp_args
  local mdir=$1 dset=$2 skip=false w
  local words=()
  shift 2
  for w in "${@:2}"; do  # the command without its interpreter and --num-threads N
    if [ "${skip}" = true ]; then skip=false; continue; fi
    if [ "${w}" = --num-threads ]; then skip=true; continue; fi
    words+=("${w}")
  done
  stamp_args=(--file "${mdir}/${inference_model}" "${mdir}/config.yaml" "${decode_config}" "${lm_opts[@]:1}"
              "${datadir}/${dset}/wav.scp" "${datadir}/${dset}/segments" "${datadir}/${dset}/utt2spk"
              "${datadir}/${dset}/text" --value "command=$(printf '%q ' "${words[@]}")")
}
decoded() {
  local out=$1 stale
  shift
  decode_stamp_args "$@"
  stale=$(${python} -m ent.bin.stamp check "${out}/.done" "${stamp_args[@]}") && return 0
  [ -f "${out}/.done" ] && log "decoding again: ${stale}"
  return 1
}
queue_decode() {
  local out=$1
  shift
  mkdir -p "${out}"
  rm -f "${out}/.done"
  decode_stamp_args "$@"
  ${python} -m ent.bin.stamp write "${out}/.done.pending" "${stamp_args[@]}"
  shift 2
  {
    job_script_head "ent.sh: the decoding of ${out}"
    printf '%q ' "$@"; echo
    printf 'mv -f %q %q\n' "${out}/.done.pending" "${out}/.done"
  } > "${out}/decode.sh"
  decode_queue+=("${out#"${expdir}/"}")
}
run_decode_jobs() {
  local name=$1 nj=${2:-${inference_nj}} jobs
  [ "${#decode_queue[@]}" -gt 0 ] || return 0
  jobs="${decode_queue[*]}"
  decode_queue=()
  run_jobs "${name}: decoding failed" "${decode_cmd}" "${nj}" JOB="${jobs}" "${expdir}/JOB/decode.log" \
    bash "${expdir}/JOB/decode.sh"
}
check_decodable() {  # check_decodable STAGE MODEL_DIR
  if [ ! -f "$2/${inference_model}" ]; then
    log "Error: $1: $2/${inference_model} not found: train it first (stage 7)"; exit 1
  fi
  if [ "${lm_order}" -gt 0 ] && [ ! -f "${lm_file}" ]; then
    log "Error: $1: ${lm_file} not found: train the LM first (stage 6, --lm_order ${lm_order})"; exit 1
  fi
}
queue_full_decode() {  # queue_full_decode STAGE MODEL_DIR SET
  local out="$2/${decode_tag}/$3"
  local cmd=(${python} -m ent.bin.inference --model-dir "$2" --model-file "${inference_model}"
    --config "${decode_config}" "${inference_opts[@]}" "${lm_opts[@]}" --data-dir "${datadir}/$3"
    --out-dir "${out}" --ngpu "${ngpu}" --num-threads "${decode_threads}")
  if decoded "${out}" "$2" "$3" "${cmd[@]}"; then log "$1: ${out} already decoded"; return; fi
  check_decodable "$1" "$2"
  log "$1: decoding ${datadir}/$3 with $2/${inference_model} -> ${out} (log: ${out}/decode.log)"
  queue_decode "${out}" "$2" "$3" "${cmd[@]}"
}

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ]; then
  for config in "${configs[@]}"; do
    mdir="${expdir}/$(model_tag_of "${config}")"
    for dset in ${valid_set} ${test_sets}; do
      queue_full_decode "Stage 8" "${mdir}" "${dset}"
    done
  done
  run_decode_jobs "Stage 8"
fi

if [ "${stage}" -le 9 ] && [ "${stop_stage}" -ge 9 ]; then
  for config in "${configs[@]}"; do
    tag=$(model_tag_of "${config}")
    mdir="${expdir}/${tag}"
    for dset in ${valid_set} ${test_sets}; do
      log "Stage 9: scoring ${tag}/${decode_tag} on ${dset}"
      score_into_results "${tag}/${decode_tag}" "${mdir}" "${config}" "${dset}" "${mdir}/${decode_tag}/${dset}"
    done
  done
fi

if [ "${stage}" -le 10 ] && [ "${stop_stage}" -ge 10 ] && [ -n "${sed_sets}" ]; then
  for config in "${configs[@]}"; do
    mdir="${expdir}/$(model_tag_of "${config}")"
    for dset in ${sed_sets}; do
      queue_full_decode "Stage 10" "${mdir}" "${dset}"
    done
  done
  run_decode_jobs "Stage 10"
  for config in "${configs[@]}"; do
    tag=$(model_tag_of "${config}")
    mdir="${expdir}/${tag}"
    for dset in ${sed_sets}; do
      log "Stage 10: diarization scoring of ${tag}/${decode_tag} on ${dset}"
      score_into_results "${tag}/${decode_tag}" "${mdir}" "${config}" "${dset}" "${mdir}/${decode_tag}/${dset}" \
        --diarization
    done
  done
fi

if [ "${stage}" -le 11 ] && [ "${stop_stage}" -ge 11 ]; then
  for config in "${configs[@]}"; do
    mdir="${expdir}/$(model_tag_of "${config}")"
    log "Stage 11: packing ${mdir} -> ${mdir}/packed"
    ${python} -m ent.bin.pack_model --model-dir "${mdir}" --model-file "${inference_model}" \
      --out-dir "${mdir}/packed" --ssl-model "${pack_ssl_model}" \
      --decode-config "${decode_config}" "${lm_opts[@]}"
  done
  print_summary
fi

if [ "${stage}" -le 12 ] && [ "${stop_stage}" -ge 12 ] && [ -n "${streaming_configs}" ]; then
  eval_sets=$(echo ${test_sets} ${sed_sets} | tr ' ' '\n' | sort -u)
  # Frame emotions are the per-frame decisions of the whole utterance's search
  # in every row (no smoothing and no pieces, which need the whole utterance),
  # so that full context and streams compare. One job at a time, each with
  # torch's default threads.
  for config in ${streaming_configs}; do
    mdir="${expdir}/$(model_tag_of "${config}")"
    for chunk in full ${streaming_chunk_ms}; do
      if [ "${chunk}" = full ]; then
        sopts=(); sdir="${decode_base}_greedy_${inference_tag}"
      else
        sopts=(--streaming --chunk-ms "${chunk}"); sdir="${decode_base}_stream${chunk}_${inference_tag}"
      fi
      for dset in ${eval_sets}; do
        out="${mdir}/${sdir}/${dset}"
        cmd=(${python} -m ent.bin.inference --model-dir "${mdir}"
          --model-file "${inference_model}" --config "${decode_config}" "${inference_opts[@]}"
          --search greedy --frame-switch-penalty 0 --frame-emotion-pause 0
          --lm-weight 0 --token-bonus 0 "${sopts[@]}"
          --data-dir "${datadir}/${dset}" --out-dir "${out}" --ngpu "${ngpu}")
        if decoded "${out}" "${mdir}" "${dset}" "${cmd[@]}"; then log "Stage 12: ${out} already decoded"; continue; fi
        check_decodable "Stage 12" "${mdir}"
        log "Stage 12: ${sdir} decoding of ${datadir}/${dset} -> ${out} (log: ${out}/decode.log)"
        queue_decode "${out}" "${mdir}" "${dset}" "${cmd[@]}"
      done
    done
  done
  run_decode_jobs "Stage 12" 1
  for config in ${streaming_configs}; do
    tag=$(model_tag_of "${config}")
    mdir="${expdir}/${tag}"
    for chunk in full ${streaming_chunk_ms}; do
      if [ "${chunk}" = full ]; then sdir="${decode_base}_greedy_${inference_tag}"
      else sdir="${decode_base}_stream${chunk}_${inference_tag}"; fi
      for dset in ${eval_sets}; do
        dia=()
        case " ${sed_sets} " in *" ${dset} "*) dia=(--diarization) ;; esac
        score_into_results "${tag}/${sdir}" "${mdir}" "${config}" "${dset}" "${mdir}/${sdir}/${dset}" "${dia[@]}"
      done
    done
  done
  print_summary
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
