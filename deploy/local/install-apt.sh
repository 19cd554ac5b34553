#!/usr/bin/env bash
# Install Debian packages the local stack needs, once. Usage: install-apt.sh PACKAGE...
source "$(dirname "$0")/common.sh"
missing=()
for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
((${#missing[@]} == 0)) && exit 0
log "apt-get install ${missing[*]}"
sudo=""; [[ $(id -u) -eq 0 ]] || sudo=sudo
# policy-rc.d keeps Debian from starting the packages' own daemons: we run ours with our config.
$sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
apt_install() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
# A fresh machine's package lists may be empty or stale: update once and try again.
apt_install || { $sudo apt-get update -qq && apt_install; }
$sudo rm -f /usr/sbin/policy-rc.d
