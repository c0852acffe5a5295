#!/usr/bin/env bash
# Fetch GitHub's official OpenAPI description of api.github.com (from the npm package
# @octokit/openapi, pinned below) into a cache and print the path of the JSON file. The GitHub
# double in tests/github_double checks every request and response against it.
# Idempotent and offline once cached: a present file is printed without touching the network.
#   usage: tests/infra/fetch-openapi.sh        cache: ${MLOPS_CACHE:-~/.cache/mlops-actions}/openapi
set -euo pipefail
version="23.0.2"
sha256="829b4bebb19a53133289f7b0bc819f4f1118115821db2ca9f25e9ee995a7da2a"
dir="${MLOPS_CACHE:-$HOME/.cache/mlops-actions}/openapi"
out="$dir/api.github.com-$version.json"
if [ -s "$out" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$dir"
tmp="$(mktemp -d "$dir/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
npm pack "@octokit/openapi@$version" --pack-destination "$tmp" --silent >/dev/null
tar -xzf "$tmp"/octokit-openapi-"$version".tgz -C "$tmp" package/generated/api.github.com.json
echo "$sha256  $tmp/package/generated/api.github.com.json" | sha256sum -c --quiet - >&2
mv "$tmp/package/generated/api.github.com.json" "$out"
echo "$out"
