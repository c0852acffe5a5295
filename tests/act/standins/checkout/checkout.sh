#!/usr/bin/env bash
# See action.yml. Mirrors actions/checkout v4's git commands for an existing or a new workspace.
set -euo pipefail
server="${GITHUB_SERVER_URL:-https://github.com}"
url="$server/$INPUT_REPOSITORY"
ref="${INPUT_REF:-$GITHUB_REF}"
branch="${ref#refs/heads/}"
branch="${branch#refs/tags/}"
mkdir -p "$GITHUB_WORKSPACE"
cd "$GITHUB_WORKSPACE"
git config --global --add safe.directory "$GITHUB_WORKSPACE"
if [ ! -d .git ]; then
  git init -q
fi
git config --local --unset-all "http.$server/.extraheader" 2>/dev/null || true
if [ "$INPUT_CLEAN" = true ] && git rev-parse -q --verify HEAD >/dev/null; then
  git clean -ffdx -q
  git reset --hard -q HEAD
fi
git remote remove origin 2>/dev/null || true
git remote add origin "$url"
if [ "$INPUT_FETCH_DEPTH" = 0 ]; then
  git fetch -q --no-tags --prune origin '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*'
else
  git fetch -q --no-tags --depth="$INPUT_FETCH_DEPTH" origin "+$GITHUB_SHA:refs/remotes/origin/$branch"
fi
git checkout -q --force -B "$branch" "refs/remotes/origin/$branch"
git reset -q --hard "$GITHUB_SHA" 2>/dev/null || true
if [ "$INPUT_PERSIST_CREDENTIALS" = true ]; then
  basic="$(printf 'x-access-token:%s' "$INPUT_TOKEN" | base64 -w0)"
  echo "::add-mask::$basic"
  git config --local "http.$server/.extraheader" "AUTHORIZATION: basic $basic"
fi
echo "checked out $(git rev-parse HEAD) of $url ($branch)"
