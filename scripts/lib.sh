# Shared by scripts/run and scripts/test: install what is missing, skip what is there.
# Sourced, not run. Every step says what it does; long steps show their own progress.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_apt PKG...: installs the Debian packages that are not installed yet.
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "Debian packages present: $*"
    return
  fi
  step "Installing Debian packages: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# ensure_node: Node.js and npm (Debian's, unless a node is on PATH already).
ensure_node() {
  if command -v node >/dev/null && command -v npm >/dev/null; then
    echo "Node.js present: $(node --version), npm $(npm --version)"
  else
    ensure_apt nodejs npm
  fi
}

# ensure_flux_parser: the real Flux parser (influxdata's libflux as WebAssembly, from npm) that
# ogm-store-influx's tests use as InfluxDB's POST /api/v2/query/ast, at the version its
# package-lock.json pins.
ensure_flux_parser() {
  ensure_node
  local dir=stores/influx/tests/flux-parser want have
  want=$(node -p "require('./$dir/package-lock.json').packages['node_modules/@influxdata/flux-lsp-browser'].version")
  have=$(node -p "try { require('./$dir/node_modules/@influxdata/flux-lsp-browser/package.json').version } catch { '' }")
  if [ "$have" = "$want" ]; then
    echo "Flux parser present: @influxdata/flux-lsp-browser $have"
  else
    step "Installing the Flux parser for the InfluxDB tests (npm ci; @influxdata/flux-lsp-browser $want)"
    npm ci --prefix "$dir" --no-audit --no-fund
  fi
}

# ensure_target TARGET...: rustup targets.
ensure_target() {
  local installed
  installed=$(rustup target list --installed)
  for t in "$@"; do
    if grep -qx "$t" <<<"$installed"; then
      echo "Rust target present: $t"
    else
      step "Adding Rust target $t"
      rustup target add "$t"
    fi
  done
}

# The wasm-bindgen version Cargo.lock pins; the CLI must be exactly that version.
locked_wasm_bindgen() {
  awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock
}

# ensure_web_toolchain: the wasm32 target, trunk 0.21 (0.22 needs a newer rustc) and the
# wasm-bindgen-cli that matches Cargo.lock, so trunk downloads nothing.
ensure_web_toolchain() {
  ensure_target wasm32-unknown-unknown
  if trunk --version 2>/dev/null | grep -q '^trunk 0\.21\.'; then
    echo "trunk present: $(trunk --version)"
  else
    step "Installing trunk 0.21 (cargo install; about 5 minutes)"
    cargo install trunk --version '~0.21' --locked
  fi
  local want
  want=$(locked_wasm_bindgen)
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$want" ]; then
    echo "wasm-bindgen-cli present: $want"
  else
    step "Installing wasm-bindgen-cli $want (cargo install; about 2 minutes)"
    # Not --locked: its lock file names a crate newer than some registries have.
    cargo install wasm-bindgen-cli --version "=$want"
  fi
}

# build_dashboard: the release build of the dashboard into dist/.
build_dashboard() {
  step "Building the dashboard (trunk build --release)"
  trunk build --release --offline
}
