#!/usr/bin/env bash
# Installs the programs the integration and e2e tests need that PyPI does not ship:
# Prometheus (and promtool), Chromium and docker-compose (1.29, only to check
# docker-compose.yml: `config -q` needs no engine) from Debian. Redis and PostgreSQL are expected
# on the machine. Without root or apt, prints what is missing; the tests that need a
# missing program then skip with a reason naming it (and fail under CI=true).
set -u
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing ${missing[*]} from Debian (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/narrows-apt.log 2>&1 \
    || { apt-get update >>/tmp/narrows-apt.log 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/narrows-apt.log 2>&1; } \
    || { echo "warning: apt-get could not install ${missing[*]} (see /tmp/narrows-apt.log)"; exit 0; }
else
  echo "warning: ${missing[*]} not installed and no root/apt to install it; tests needing it will skip"
fi
exit 0
