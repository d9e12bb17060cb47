#!/usr/bin/env bash
# Install SLURM (controller, node daemon, client commands), munge and shellcheck from Debian's packages.
#
# Used by CI (.ci/slurm/start.sh calls it) to run the SLURM batch scripts of scripts/slurm/ against a real
# one-node SLURM on localhost. Needs root. Idempotent: does nothing when everything is already installed.
set -euo pipefail

packages=(slurm-wlm munge shellcheck)
missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install.sh: installing ${missing[*]} needs root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Package scripts must not try to start the daemons: start.sh starts them with our configuration.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    created_policy=1
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [[ $created_policy -eq 1 ]]; then
    rm -f "$policy"
fi
