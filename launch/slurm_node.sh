#!/usr/bin/env bash
# One distgan task per node: started by `srun` from slurm_common.sh, never by hand.
#
# Job: build this node's training command (its machine rank is $SLURM_NODEID, which
# only exists here, on the node) and run it; report a preemption as exit code 75.
# It must not decide about requeueing: the batch script does that.
#
# Inputs (exported by slurm_common.sh): DISTGAN_PYTHON, DISTGAN_ENTRY, DISTGAN_CONFIG,
# DISTGAN_NNODES, DISTGAN_PROCS_PER_NODE, DISTGAN_MAIN_ADDR, DISTGAN_MAIN_PORT,
# DISTGAN_ACCELERATE_CONFIG (optional); "$@" = overrides and flags for distgan.train.
set -uo pipefail

readonly PREEMPTED=75
nnodes=$DISTGAN_NNODES
procs_per_node=$DISTGAN_PROCS_PER_NODE
world=$((nnodes * procs_per_node))

if [ "$world" -eq 1 ]; then
    # One process in all: no launcher in between, so the trainer sees the signal and
    # its exit code (75) comes straight back.
    cmd=("$DISTGAN_PYTHON" -m "$DISTGAN_ENTRY" --config "$DISTGAN_CONFIG" "$@")
else
    cmd=("$DISTGAN_PYTHON" -m accelerate.commands.launch)
    if [ -n "${DISTGAN_ACCELERATE_CONFIG:-}" ]; then
        cmd+=(--config_file "$DISTGAN_ACCELERATE_CONFIG")
    fi
    cmd+=(--multi_gpu --num_processes "$world")
    if [ "$nnodes" -gt 1 ]; then
        cmd+=(--num_machines "$nnodes" --machine_rank "$SLURM_NODEID"
            --main_process_ip "$DISTGAN_MAIN_ADDR" --main_process_port "$DISTGAN_MAIN_PORT")
    else
        cmd+=(--main_process_port "$DISTGAN_MAIN_PORT")
    fi
    cmd+=(-m "$DISTGAN_ENTRY" --config "$DISTGAN_CONFIG" "$@")
fi

echo "distgan-slurm: node $SLURM_NODEID ($(hostname)): ${cmd[*]}"

# Slurm signals every process of the step (this shell, the launcher, the workers), so
# this shell only notes the signal: forwarding it again would signal the launcher twice.
signalled=""
trap 'signalled=USR1' USR1
trap 'signalled=${signalled:-TERM}' TERM INT

"${cmd[@]}" &
child=$!
# `wait` returns early (status > 128) whenever a trapped signal arrives: wait again
# until the child has really exited.
while :; do
    wait "$child"
    rc=$?
    kill -0 "$child" 2>/dev/null || break
done

# accelerate's launcher turns the workers' exit code 75 into 1 (it re-raises the signal
# as an exception), and a late second signal can kill a process that already saved its
# checkpoint: a signalled task that did not finish cleanly counts as preempted.
if [ "$rc" -ne 0 ] && [ "$rc" -ne "$PREEMPTED" ] && [ -n "$signalled" ]; then
    echo "distgan-slurm: node $SLURM_NODEID: exit $rc after SIG$signalled: reporting preemption ($PREEMPTED)"
    rc=$PREEMPTED
fi
exit "$rc"
