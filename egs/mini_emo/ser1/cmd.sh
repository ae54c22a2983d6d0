# Job dispatch of this recipe, sourced by ser.sh: every job is
#
#   ${train_cmd} [--max_jobs_run N] [JOB=1:N | JOB=a,b,c] LOG COMMAND [ARG...]
#
# COMMAND runs once per JOB value (the string JOB in LOG and the ARGs replaced
# by it), at most N at a time; the call fails when one job fails, after killing
# the others and showing the end of the failed job's log (utils/run_local.sh).
#   train_cmd   jobs that train (ser.sh stage 2: one per baseline, --train_nj at a time)
#   decode_cmd  decoding jobs (ser.sh stage 3: one per model and set, --inference_nj at a time)

# Local machine (default): the jobs run here, in parallel.
train_cmd="utils/run_local.sh"
decode_cmd="utils/run_local.sh"

# Slurm: each job an `srun` job step with its own resources (the logs and the
# failure handling as above; a killed srun cancels its step). Run the recipe
# on the login node; inside a Slurm job (e.g. a fold's ser.sh, itself a
# train_cmd job) the jobs run locally, on that job's resources.
# if [ -z "${SLURM_JOB_ID:-}" ]; then
#   train_cmd="utils/run_local.sh --launcher srun --launcher_opt --gres=gpu:1 --launcher_opt --cpus-per-task=4 --launcher_opt --mem=32G --launcher_opt --time=2-00:00:00"
#   decode_cmd="utils/run_local.sh --launcher srun --launcher_opt --cpus-per-task=2 --launcher_opt --mem=8G --launcher_opt --time=4:00:00"
# fi
# The whole recipe as one Slurm batch job instead (jobs then run locally on its node):
# sbatch --gres=gpu:1 --cpus-per-task=8 --mem=64G --time=3-00:00:00 --output=run.%j.log ./run.sh
