#!/usr/bin/env bash
# Step "docker": a running Docker engine. When `docker info` fails and we are root on a Debian-like
# machine, install docker.io if dockerd is missing, then start dockerd in the background:
#   --bridge=none     no default bridge (docker0) at all, so no container can land on it by accident;
#                     swerl's containers use network_mode none (builds: --network none or host)
#   --iptables=false  the engine leaves the host's firewall alone
# Log: .cache/dockerd.log, pidfile: .cache/dockerd.pid. Waits up to 60 s for `docker info`.
STEP=docker
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if out=$(docker info --format '{{.ServerVersion}}' 2>&1); then
  skipped "engine $out"
fi
if grep -qi 'permission denied' <<<"$out"; then
  die "the Docker engine runs but this user may not use it: add yourself to the 'docker' group (sudo usermod -aG docker \$USER, then log in again)"
fi
missing "no running Docker engine"

if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
  is_root || die "no Docker engine: install Docker Engine (Debian: sudo apt-get install docker.io; or https://docs.docker.com/engine/install/) and start it"
  command -v apt-get >/dev/null || die "no Docker engine and no apt-get: install Docker Engine (https://docs.docker.com/engine/install/) and start it"
  say "installing docker.io with apt-get (dockerd, containerd, runc)"
  apt_install docker.io || die "apt-get install docker.io failed (see .cache/apt.log): install Docker Engine yourself"
fi

is_root || die "the Docker engine is not running and starting it needs root: start it (sudo systemctl start docker, or sudo dockerd &)"

pidfile="$CACHE/dockerd.pid"
if [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  say "dockerd (pid $(cat "$pidfile")) is running but not answering yet; waiting"
else
  rm -f "$pidfile" # stale (a previous engine that is gone): the wait below reads it
  say "starting dockerd in the background (log: .cache/dockerd.log)"
  # setsid + nohup: the engine outlives this script, make and the terminal.
  setsid nohup dockerd --bridge=none --iptables=false --pidfile "$pidfile" \
    >>"$CACHE/dockerd.log" 2>&1 </dev/null &
fi

for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    finished "engine $(docker info --format '{{.ServerVersion}}'), pid $(cat "$pidfile" 2>/dev/null || echo '?')"
  fi
  if [[ -s "$pidfile" ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
tail -n 15 "$CACHE/dockerd.log" >&2 || true
if [[ -s "$pidfile" ]] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  die "dockerd exited (log above and in .cache/dockerd.log)"
fi
die "dockerd did not answer within 60 s (log above and in .cache/dockerd.log)"
