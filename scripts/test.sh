#!/usr/bin/env bash
# Everything the tests need, then the whole suite: Debian's mosquitto and
# influxdb, a virtualenv with the package and its test extras, ruff, mypy,
# pytest (unit, integration against real servers, chaos), and the unit tests
# again under Python 3.9 when a 3.9 interpreter is present, and the MQTT tests
# under the oldest paho-mqtt that pyproject.toml allows.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib.sh
apt_need mosquitto:mosquitto influxd:influxdb systemd-analyze:systemd

echo "== virtualenv .venv ($(python3 --version))"
venv_install .venv '[test]'

echo "== ruff"
.venv/bin/ruff check edge_agent tests bench scripts
echo "== mypy"
.venv/bin/mypy

echo "== pytest"
# Most tests wait on real servers and processes, not on the CPU: three workers
# (each with its own influxd and mosquitto) keep the suite near 5 minutes on 2 cores.
.venv/bin/python -m pytest -q -p no:cacheprovider -n 3 "$@"

# The oldest paho the declared range allows (its lower bound, read from pyproject.toml):
# the MQTT source and its fast-path checks must hold there too. Only the MQTT tests.
paho_oldest=$(grep -o '"paho-mqtt>=[0-9.]*' pyproject.toml | cut -d= -f2)
echo "== MQTT tests under paho-mqtt $paho_oldest (.venv-paho-old)"
[ -x .venv-paho-old/bin/python ] || python3 -m venv .venv-paho-old
.venv-paho-old/bin/python -m pip install -q --disable-pip-version-check -e . pytest pytest-timeout \
    hypothesis "paho-mqtt==$paho_oldest"
.venv-paho-old/bin/python -m pytest -q -p no:cacheprovider tests/unit/test_mqtt_client.py \
    tests/unit/test_mqtt_parse.py tests/integration/test_mqtt_source.py

# A 3.9 interpreter that really runs (a pyenv shim on PATH may only print an error).
py39=""
for candidate in "$(command -v python3.9 || true)" "$HOME"/.pyenv/versions/3.9*/bin/python3.9 \
                 /root/.pyenv/versions/3.9*/bin/python3.9; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
        py39=$candidate
        break
    fi
done
if [ -n "$py39" ]; then
    echo "== unit tests under $("$py39" --version)"
    [ -x .venv39/bin/python ] || "$py39" -m venv .venv39
    venv_install .venv39 '[test]'
    .venv39/bin/python -m pytest -q -p no:cacheprovider tests/unit
else
    echo "== no python3.9 on this machine: the 3.9 unit run is left out (ruff and mypy still check 3.9 syntax)"
fi
