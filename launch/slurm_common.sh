# shellcheck shell=bash
# The batch-script half of distgan's Slurm launch, sourced by slurm_multinode.sbatch
# and slurm_single.sbatch (which only add #SBATCH defaults).
#
# Job: check the request before any compute (config file, node count, Python), pick
# the head node's address and a port, run one slurm_node.sh task per node under srun,
# forward Slurm's early-warning SIGUSR1 to it, and requeue the job when the trainer
# checkpointed on a signal (exit 75) without finishing. It must not parse configs or
# know training details: the trainer owns resuming (`--resume auto`).
#
# Environment knobs (all optional):
#   DISTGAN_PYTHON        python to run (default: `python` on PATH)
#   DISTGAN_VENV          virtualenv to activate first (sets the default python)
#   DISTGAN_CPU=1         train on CPU (exports ACCELERATE_USE_CPU=1; 1 process per node)
#   DISTGAN_PROCS_PER_NODE  processes per node (default: GPUs on the node, else 1)
#   DISTGAN_NODES         node count you expect; the job fails if the allocation differs
#   DISTGAN_PORT          rendezvous port on the head node (default: derived from the job id)
#   DISTGAN_MAIN_ADDR     address of the head node (default: its NodeAddr in Slurm)
#   DISTGAN_SOCKET_IFNAME network interface for gloo/NCCL (sets GLOO_/NCCL_SOCKET_IFNAME)
#   DISTGAN_ACCELERATE_CONFIG  accelerate config file passed to `accelerate launch`
#   DISTGAN_SHUTDOWN_TIMEOUT  seconds the launcher lets workers checkpoint after a signal (default 90)
#   DISTGAN_ENTRY         module to run (default: distgan.train)

readonly DISTGAN_PREEMPTED_EXIT=75 # distgan.trainer.PREEMPTED_EXIT_CODE

distgan_die() {
    echo "distgan-slurm: error: $*" >&2
    exit 2
}

distgan_log() {
    echo "distgan-slurm: $*"
}

# GPUs Slurm gave this node: SLURM_GPUS_ON_NODE, else SLURM_GPUS_PER_NODE ("4" or "a100:4").
distgan_gpus_on_node() {
    if [ -n "${SLURM_GPUS_ON_NODE:-}" ]; then
        echo "$SLURM_GPUS_ON_NODE"
    elif [ -n "${SLURM_GPUS_PER_NODE:-}" ]; then
        echo "${SLURM_GPUS_PER_NODE##*:}"
    else
        echo 0
    fi
}

# A port derived from the job id and restart count (so a requeued run does not reuse a
# port that may still be in TIME_WAIT), moved up until free when we run on the head node.
distgan_pick_port() {
    local head=$1 port
    port=$((20000 + (SLURM_JOB_ID * 7 + ${SLURM_RESTART_COUNT:-0}) % 20000))
    if [ "${SLURMD_NODENAME:-}" = "$head" ]; then
        port=$("$DISTGAN_PYTHON" - "$port" <<'EOF'
import socket, sys
port = int(sys.argv[1])
for candidate in list(range(port, min(port + 200, 65535))) + [0]:
    with socket.socket() as sock:
        try:
            sock.bind(("", candidate))
        except OSError:
            continue
        print(sock.getsockname()[1])
        break
EOF
        )
    fi
    echo "$port"
}

distgan_slurm_main() {
    local script=$1 mode=$2
    shift 2
    # Signals first (bash would die of an untrapped SIGUSR1 during the checks below).
    local srun_pid="" warned="" terminating="" rc
    # --signal=B:USR1@T warns only this shell: pass it on to every task of the step once.
    trap 'warned=1; distgan_log "SIGUSR1: asking the trainer to checkpoint and stop"; [ -n "$srun_pid" ] && kill -USR1 "$srun_pid"' USR1
    # SIGTERM reaches this shell when the job is cancelled or killed by Slurm, which signals
    # the step itself: do not forward it again, and never requeue a cancelled job.
    trap 'terminating=1; distgan_log "SIGTERM: the job is ending"' TERM

    [ $# -ge 1 ] || distgan_die "usage: sbatch [sbatch options] launch/$script CONFIG.yaml [KEY=VALUE ...] [--resume auto|never|PATH]"
    local config=$1
    shift
    [ -f "$config" ] || distgan_die "config file not found: '$config' (relative paths are relative to the submit directory ${SLURM_SUBMIT_DIR:-$PWD})"
    # Absolute first (so `cd` never sees `-` or an option), and `--` so a name like -x.yaml is no option.
    case $config in /*) ;; *) config=$PWD/$config ;; esac
    config=$(cd -- "$(dirname -- "$config")" && pwd)/$(basename -- "$config")

    # --- nodes -----------------------------------------------------------------------------------
    local nnodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-}}
    [ -n "$nnodes" ] || distgan_die "SLURM_JOB_NUM_NODES is unset: is this really a Slurm batch job?"
    if [ -n "${DISTGAN_NODES:-}" ] && [ "$DISTGAN_NODES" != "$nnodes" ]; then
        distgan_die "DISTGAN_NODES=$DISTGAN_NODES but the allocation has $nnodes node(s) ($SLURM_JOB_NODELIST); submit with --nodes=$DISTGAN_NODES or unset DISTGAN_NODES"
    fi
    if [ "$mode" = single ] && [ "$nnodes" -ne 1 ]; then
        distgan_die "$script runs on one node but the allocation has $nnodes ($SLURM_JOB_NODELIST); use launch/slurm_multinode.sbatch for several nodes"
    fi

    # --- python ----------------------------------------------------------------------------------
    if [ -n "${DISTGAN_VENV:-}" ]; then
        [ -f "$DISTGAN_VENV/bin/activate" ] || distgan_die "DISTGAN_VENV=$DISTGAN_VENV has no bin/activate"
        # shellcheck disable=SC1091
        source "$DISTGAN_VENV/bin/activate"
    fi
    DISTGAN_PYTHON=${DISTGAN_PYTHON:-$(command -v python || command -v python3 || true)}
    [ -n "$DISTGAN_PYTHON" ] && [ -x "$(command -v "$DISTGAN_PYTHON")" ] ||
        distgan_die "no python found: set DISTGAN_PYTHON=/path/to/venv/bin/python or DISTGAN_VENV=/path/to/venv"
    DISTGAN_ENTRY=${DISTGAN_ENTRY:-distgan.train}
    [[ "$DISTGAN_ENTRY" =~ ^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$ ]] ||
        distgan_die "DISTGAN_ENTRY must be a Python module name like distgan.train, got '$DISTGAN_ENTRY'"
    # The repository root on PYTHONPATH lets `-m distgan.train` work from a plain checkout.
    export PYTHONPATH="$DISTGAN_HOME${PYTHONPATH:+:$PYTHONPATH}"
    # The entry module travels as an argument, never as part of the program text.
    "$DISTGAN_PYTHON" -c '
import importlib.util, sys
missing = [m for m in ("accelerate", sys.argv[1].split(".")[0]) if importlib.util.find_spec(m) is None]
sys.exit("cannot import " + ", ".join(missing) + " with " + sys.executable if missing else 0)' "$DISTGAN_ENTRY" ||
        distgan_die "$DISTGAN_PYTHON cannot run distgan: install it (pip install -e .) or set DISTGAN_PYTHON / DISTGAN_VENV"

    # --- processes -------------------------------------------------------------------------------
    local procs
    if [ "${DISTGAN_CPU:-0}" = 1 ]; then
        export ACCELERATE_USE_CPU=1
        procs=${DISTGAN_PROCS_PER_NODE:-1}
    else
        procs=${DISTGAN_PROCS_PER_NODE:-$(distgan_gpus_on_node)}
        if [ "$procs" = 0 ] && [ -z "${DISTGAN_PROCS_PER_NODE:-}" ]; then
            distgan_log "no GPUs in the allocation (submit with --gpus-per-node=G, or set DISTGAN_CPU=1): 1 process per node"
            procs=1
        fi
    fi
    [[ "$procs" =~ ^[1-9][0-9]*$ ]] || distgan_die "DISTGAN_PROCS_PER_NODE must be a positive integer, got '$procs'"

    # --- rendezvous ------------------------------------------------------------------------------
    local head addr port
    head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    addr=${DISTGAN_MAIN_ADDR:-$(scontrol show node "$head" -o | sed -n 's/.*NodeAddr=\([^ ]*\).*/\1/p')}
    addr=${addr:-$head}
    port=${DISTGAN_PORT:-$(distgan_pick_port "$head")}
    if [ -n "${DISTGAN_SOCKET_IFNAME:-}" ]; then
        export GLOO_SOCKET_IFNAME=$DISTGAN_SOCKET_IFNAME NCCL_SOCKET_IFNAME=$DISTGAN_SOCKET_IFNAME
    fi
    # accelerate/torchrun forward only TERM/INT/HUP/QUIT by default; an unhandled USR1
    # would kill the launcher and orphan the workers.
    export PET_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGUSR1 TORCHELASTIC_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGUSR1
    # After forwarding a signal the launcher SIGKILLs workers still running after this long (torch's
    # default: 30 s). Keep it below the --signal warning time so the checkpoint can finish.
    export TORCH_ELASTIC_SHUTDOWN_TIMEOUT=${DISTGAN_SHUTDOWN_TIMEOUT:-90}
    export DISTGAN_PYTHON DISTGAN_ENTRY DISTGAN_CONFIG=$config DISTGAN_NNODES=$nnodes
    export DISTGAN_PROCS_PER_NODE=$procs DISTGAN_MAIN_ADDR=$addr DISTGAN_MAIN_PORT=$port

    distgan_log "job $SLURM_JOB_ID restart ${SLURM_RESTART_COUNT:-0}: $nnodes node(s) x $procs process(es) = world $((nnodes * procs)), head $head ($addr:$port), python $DISTGAN_PYTHON"

    # --- run, forwarding the early warning -------------------------------------------------------
    if [ -n "$warned" ]; then
        rc=$DISTGAN_PREEMPTED_EXIT # warned before the start: no time left to train, go straight back
    else
        srun --nodes="$nnodes" --ntasks="$nnodes" --ntasks-per-node=1 \
            bash "$DISTGAN_HOME/launch/slurm_node.sh" "$@" &
        srun_pid=$!
        while :; do
            wait "$srun_pid"
            rc=$?
            kill -0 "$srun_pid" 2>/dev/null || break
        done
    fi

    # --- requeue or finish -----------------------------------------------------------------------
    if [ "$rc" -eq 0 ]; then
        distgan_log "training finished (exit 0)"
        exit 0
    fi
    if [ -n "$terminating" ]; then
        distgan_log "step exited $rc while the job was being terminated: not requeueing"
        exit "$rc"
    fi
    if [ "$rc" -eq "$DISTGAN_PREEMPTED_EXIT" ] || [ -n "$warned" ]; then
        distgan_log "step exited $rc after a preemption signal: requeueing job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0})"
        scontrol requeue "$SLURM_JOB_ID" || distgan_die "scontrol requeue $SLURM_JOB_ID failed; resubmit by hand (the run resumes from its latest checkpoint)"
        exit "$DISTGAN_PREEMPTED_EXIT"
    fi
    distgan_log "training failed (exit $rc): not requeueing"
    exit "$rc"
}
