#!/usr/bin/env bash
# Installs the Debian packages the end-to-end tests use, if any is missing:
# procps, diffutils and coreutils for the scripts, and OpenSSH (client and
# server) for the setup ssh scripts, which run a real sshd on loopback.
set -euo pipefail
missing=()
for pair in pgrep:procps ps:procps awk:mawk cmp:diffutils sha256sum:coreutils stat:coreutils sed:sed \
	base64:coreutils ssh:openssh-client ssh-keygen:openssh-client /usr/sbin/sshd:openssh-server tar:tar setsid:util-linux; do
	command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
((${#missing[@]})) || exit 0
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "installing ${missing[*]} for the tests" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
