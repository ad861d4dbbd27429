#!/bin/sh
# Installs the relay from its wheel: a venv in $PREFIX, the system user `voice-relay`, and its data
# directory. docs/deploy.md runs it on a VM, deploy/Dockerfile in the image, and the namespace
# test the same way, so all three are the same install.
#
#   deploy/install.sh dist/voice_relay-*.whl
#
# Environment: PREFIX (/opt/voice-relay), DATA_DIR (/var/lib/voice-relay), EXTRAS (assistant:
# the offline model; empty for none), PYTHON (python3), PIP_ARGS (extra pip options, e.g.
# `--no-index --find-links DIR` offline).
set -eu

wheel=${1:?usage: deploy/install.sh WHEEL}
PREFIX=${PREFIX:-/opt/voice-relay}
DATA_DIR=${DATA_DIR:-/var/lib/voice-relay}
EXTRAS=${EXTRAS-assistant}
PYTHON=${PYTHON:-python3}

"$PYTHON" -m venv "$PREFIX"
spec=$wheel
[ -n "$EXTRAS" ] && spec="$wheel[$EXTRAS]"
# shellcheck disable=SC2086  # PIP_ARGS is a list of options
"$PREFIX/bin/pip" install --quiet --disable-pip-version-check ${PIP_ARGS:-} "$spec"

if ! id voice-relay >/dev/null 2>&1; then
    useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin voice-relay
fi
mkdir -p "$DATA_DIR"
chown voice-relay:voice-relay "$DATA_DIR"
chmod 0750 "$DATA_DIR"
"$PREFIX/bin/voice-relay" --help >/dev/null
echo "installed $("$PREFIX/bin/pip" show voice-relay | sed -n 's/^Version: //p') in $PREFIX"
