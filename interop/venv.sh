# Sourced by the interop and benchmark scripts: `ensure_venv NAME REQUIREMENTS "mod_a, mod_b"`
# makes (once) a virtualenv under target/venv-NAME with REQUIREMENTS installed, checked by
# importing the modules, and sets VENV to it.
ensure_venv() {
  local name="$1" requirements="$2" modules="$3"
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  VENV="$root/target/venv-$name"
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import $modules" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  fi
}
