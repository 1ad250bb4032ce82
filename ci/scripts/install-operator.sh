#!/bin/sh
# Builds the operator's wheel from a source tree and installs it into a fresh virtualenv. The
# Dockerfile's build stage runs exactly this script, and so does the packaging test
# (tests/carvel/test_image.py): what the test starts is what the image holds.
#
# usage: install-operator.sh SOURCE_DIR VENV_DIR
#   SOURCE_DIR  holds pyproject.toml, README.md and operator/
#   VENV_DIR    made here; afterwards VENV_DIR/bin/vmray-operator is the entry point
# environment:
#   PYTHON  the interpreter that makes the virtualenv (default python3)
#   LOCK=1  install without ci/scripts/operator-constraints.txt and rewrite it from what got installed
#           (after a change of pyproject.toml's dependencies; the test fails while it is stale)
#
# Versions: pyproject.toml pins the direct dependencies, operator-constraints.txt every one.
set -eu

src=$(cd "$1" && pwd)
venv=$2
here=$(cd "$(dirname "$0")" && pwd)
constraints=$here/operator-constraints.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip() { "$venv/bin/python" -m pip --disable-pip-version-check --quiet "$@"; }

"${PYTHON:-python3}" -m venv "$venv"
pip install pip==25.3  # the pip of the Makefile's development virtualenv

# The wheel, built from a clean copy so that no build/ or egg-info appears in the source tree.
mkdir "$work/src"
cp "$src/pyproject.toml" "$src/README.md" "$work/src/"
cp -R "$src/operator" "$work/src/operator"
find "$work/src" \( -name '__pycache__' -o -name '*.egg-info' \) -prune -exec rm -rf {} +
pip wheel --no-deps --wheel-dir "$work/dist" "$work/src"

# Only wheels (nothing compiles), every version pinned.
if [ "${LOCK:-}" = 1 ]; then
  pip install --only-binary=:all: "$work"/dist/vmray_operator-*.whl
  {
    echo "# Every runtime dependency of the operator image, pinned (ci/scripts/install-operator.sh)."
    echo "# Regenerate: LOCK=1 ci/scripts/install-operator.sh . /tmp/operator-venv"
    pip freeze --exclude vmray-operator
  } >"$constraints"
else
  pip install --only-binary=:all: --constraint "$constraints" "$work"/dist/vmray_operator-*.whl
fi

# The running operator needs neither pip nor setuptools.
pip uninstall --yes setuptools pip
