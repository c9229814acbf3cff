#!/usr/bin/env bash
# Install edge-agent as a systemd service on a Raspberry Pi (or any Debian).
#   sudo scripts/install-pi.sh            # from a clone of this repository
# Creates the edge-agent system user (i2c, dialout), a venv in
# /opt/edge-agent/venv, /etc/edge-agent/config.yaml (from config/example-pi.yaml
# if none exists; edit it, then `systemctl restart edge-agent`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }

apt-get install -y -qq python3-venv >/dev/null
install -D -m 0644 systemd/edge-agent.sysusers.conf /usr/lib/sysusers.d/edge-agent.conf
systemd-sysusers /usr/lib/sysusers.d/edge-agent.conf

python3 -m venv /opt/edge-agent/venv
/opt/edge-agent/venv/bin/pip install -q --upgrade "$(pwd)"

install -d -m 0750 -o root -g edge-agent /etc/edge-agent
if [ ! -e /etc/edge-agent/config.yaml ]; then
    install -m 0640 -o root -g edge-agent config/example-pi.yaml /etc/edge-agent/config.yaml
    echo "wrote /etc/edge-agent/config.yaml: edit it (influx url, token, sensors)"
fi
install -D -m 0644 systemd/edge-agent.service /etc/systemd/system/edge-agent.service
install -D -m 0644 README.md /usr/share/doc/edge-agent/README.md
systemctl daemon-reload
systemctl enable edge-agent.service
/opt/edge-agent/venv/bin/edge-agent check-config -c /etc/edge-agent/config.yaml \
    && systemctl restart edge-agent.service \
    && echo "edge-agent is running: journalctl -u edge-agent -f ; edge-agent status"
