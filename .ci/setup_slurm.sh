#!/usr/bin/env bash
# Install the Debian packages the Slurm and multi-node tests need (slurm-wlm, munge, iproute2).
#
# Called as root by .ci/run before pytest. Idempotent: when the daemons and
# client tools are already on PATH it exits at once without touching apt.
# It only installs packages; the tests' fixture (tests/slurm/conftest.py)
# configures and starts the daemons itself, in a temporary directory.
set -euo pipefail

needed=(slurmctld slurmd sbatch scontrol squeue sinfo scancel munged ip)

missing=()
for tool in "${needed[@]}"; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup_slurm: slurm-wlm and munge already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "setup_slurm: missing ${missing[*]}; run this script as root to install slurm-wlm and munge" >&2
    exit 1
fi

echo "setup_slurm: installing slurm-wlm and munge (missing: ${missing[*]})"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps it small; policy-rc.d stops the packages'
# post-install scripts from starting daemons we do not want (the fixture
# starts its own with its own config).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
remove_policy() { if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi; }
trap remove_policy EXIT
apt-get install -y -qq --no-install-recommends slurm-wlm munge iproute2 >/dev/null
echo "setup_slurm: installed slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm) and munge $(dpkg-query -W -f='${Version}' munge)"
