#!/usr/bin/env bash
# Idempotent set-up on a fresh machine with only PyPI, npm and Debian's packages reachable:
# node toolchain (solc-js, anvil, OpenZeppelin), the Python environment (uv.lock), the native-style solc shim
# registered with py-solc-x, `ape compile`, and the exported ABI + bytecode in artifacts/.
#
# `scripts/setup.sh python` does the Python environment alone (uv, uv.lock, the project's .pyc): what ruff and mypy
# need. `make test` runs them beside the rest of the set-up (the contracts' compile takes a core for about a minute).
# `scripts/setup.sh browser` installs Debian's chromium, which only the tests open (the reconciliation report in a
# real browser): `make test` asks for it, `make run` does not. Debian's packages are installed as root, or through
# sudo when it needs no password; otherwise the browser is left out with a notice (that test fails without it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '[setup] %s\n' "$*" >&2; }

python_environment() {
  if ! command -v uv >/dev/null; then
    log "installing uv from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check uv
  fi
  log "uv sync"
  # --compile-bytecode: the packages' .pyc files are written once here. Where PYTHONDONTWRITEBYTECODE is set (this
  # machine's environment sets it) Python otherwise compiles every imported module from source in every process:
  # the API, the simulated lenders and every test subprocess spent over half their start-up CPU compiling
  # (`creditmesh --help`: 6.0 s of CPU without, 2.5 s with). It costs ~50 s of CPU on a fresh environment, nothing
  # on a later sync.
  uv sync --frozen --quiet --compile-bytecode
  # The project's own packages (pyproject's wheel packages, and bench/) are not in site-packages: compiled here too,
  # for the same reason (their 300-odd modules took 1.6 s of every API process's import, 0.9 s compiled; the chain of
  # a test that starts the devnets, the lenders and two API processes: ~4 s of CPU). ~1 s; up-to-date files are
  # skipped, and Python ignores a .pyc whose source changed since.
  # shellcheck disable=SC2046
  .venv/bin/python -m compileall -q -j 0 $(.venv/bin/python -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]))') bench
}

# How Debian's packages are installed here (into APT): as root, or through sudo when it asks for no password; status
# 1 for anyone else, who cannot.
apt_as() {
  if [ "$(id -u)" = 0 ]; then
    APT=(apt-get)
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    APT=(sudo -n apt-get)
  else
    return 1
  fi
}

apt_install() { "${APT[@]}" update -qq && "${APT[@]}" install -y -qq "$@" >/dev/null; }

# Headless Chromium for the tests that open the reconciliation report in a real browser (Playwright from PyPI drives
# Debian's browser: `playwright install` cannot download its own here). Nothing else uses it.
browser() {
  command -v chromium >/dev/null && return 0
  if ! apt_as; then
    log "NOTICE: chromium is not installed, and installing it needs root: the test that opens the reconciliation"
    log "        report in a browser will fail without it (\`sudo apt-get install chromium\`)"
    return 0
  fi
  log "installing chromium from Debian (the browser the report test opens)"
  apt_install --no-install-recommends chromium
}

case "${1:-}" in
  python) python_environment; exit 0 ;;
  browser) browser; exit 0 ;;
esac

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if ! apt_as; then
    log "node and npm are not installed, and installing them needs root: \`sudo apt-get install nodejs npm\`"
    exit 1
  fi
  log "installing node and npm from Debian"
  apt_install nodejs npm
fi

stamp=node_modules/.creditmesh-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

python_environment

mkdir -p .toolchain/bin .toolchain/solcx
sed "s#__SOLCJS_PATH__#$ROOT/node_modules/solc#" scripts/toolchain/solc-shim.js > .toolchain/bin/solc.tmp
chmod +x .toolchain/bin/solc.tmp && mv .toolchain/bin/solc.tmp .toolchain/bin/solc
export PATH="$ROOT/.toolchain/bin:$ROOT/node_modules/.bin:$PATH" SOLCX_BINARY_PATH="$ROOT/.toolchain/solcx"
if [ ! -x .toolchain/solcx/solc-v0.8.28 ] || ! cmp -s .toolchain/bin/solc .toolchain/solcx/solc-v0.8.28; then
  rm -f .toolchain/solcx/solc-v0.8.28
  .venv/bin/python -c "import solcx; solcx.import_installed_solc()"
fi

log "ape compile"
# the shim records solc's immutableReferences there (bytecode verification masks immutables); a build cached from
# before it existed is compiled again once
export CREDITMESH_IMMUTABLES_OUT="$ROOT/.build/immutable-references.json"
# ape's incremental build recompiles a changed file but not the contracts that import it (a struct changed in
# interfaces/Types.sol left CreditScoringOracle's artifact stale): any change to a .sol file compiles everything.
sources_stamp="$ROOT/.build/sources.sha256"
sources=$(find contracts -name '*.sol' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
force=()
if [ ! -f "$CREDITMESH_IMMUTABLES_OUT" ] || [ "$(cat "$sources_stamp" 2>/dev/null)" != "$sources" ]; then
  force=(--force)
fi
.venv/bin/ape compile "${force[@]}" 2>&1 | grep -Ev '^(Input:|	)' >&2
echo "$sources" > "$sources_stamp"
.venv/bin/python scripts/toolchain/export_artifacts.py .build/__local__.json artifacts
