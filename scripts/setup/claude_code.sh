#!/usr/bin/env bash
# Step "claude-code": the pinned @anthropic-ai/claude-code from npm into .cache/claude-code/<pin>/.
# The npm package carries claude's native binary (no download at first run); the base image step
# copies that binary into the sandbox image. The pin is repos/manifest.toml [claude-code], which a
# test keeps equal to swerl_scaffold_claude_code.scaffold.PINNED_VERSION.
STEP=claude-code
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

version=$(toml_pin claude-code version)
[[ -n "$version" ]] || die "repos/manifest.toml has no [claude-code] version"
prefix="$CACHE/claude-code/$version"
claude="$prefix/node_modules/.bin/claude"

installed() { [[ -x "$claude" ]] && [[ "$("$claude" --version 2>/dev/null)" == "$version "* ]]; }

if installed; then
  skipped "claude $version in .cache/claude-code/$version"
fi
missing "claude-code $version (npm) in .cache/claude-code/$version"

command -v npm >/dev/null || die "npm is missing: install Node.js >= 18 with npm (Debian: apt-get install nodejs npm)"
say "npm install @anthropic-ai/claude-code@$version into .cache/claude-code/$version"
rm -rf "$prefix"
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error \
  "@anthropic-ai/claude-code@$version" >"$prefix.npm.log" 2>&1 ||
  die "npm install @anthropic-ai/claude-code@$version failed (log: .cache/claude-code/$version.npm.log)"
installed || die "$claude --version does not print $version (its native binary may be missing for $(uname -sm))"
finished "$("$claude" --version)"
