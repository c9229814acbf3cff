"""``edge-agent``: run the agent, or diagnose a device.

    edge-agent [-c PATH]                    run until stopped (SIGTERM/SIGINT; SIGHUP reloads)
    edge-agent --once [--dry-run] [-c PATH] one cycle with a report; exit 0 when all worked
    edge-agent check-config [-c PATH]       validate; print the effective config, secrets redacted
    edge-agent status [--json] [-c PATH]    buffer, delivery, counters, sources (while running, too)

Config path: ``-c``, else ``$EDGE_AGENT_CONFIG``, else ``/etc/edge-agent/config.yaml``.
Errors a user can cause print one line and exit 2 (config) or 1, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from . import __version__
from .errors import ConfigError, EdgeAgentError

log = logging.getLogger("edge_agent.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Sensors and MQTT to InfluxDB, buffered on disk so nothing is lost.")
    parser.add_argument("command", nargs="?", default="run",
                        choices=["run", "check-config", "status"],
                        help="what to do (default: run)")
    parser.add_argument("-c", "--config", metavar="PATH",
                        help="config file (default: $EDGE_AGENT_CONFIG or "
                             "/etc/edge-agent/config.yaml)")
    parser.add_argument("--once", action="store_true",
                        help="read every source once, deliver, print a report, exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --once: print the line protocol, write nothing")
    parser.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                        help="with --once: how long to collect MQTT messages (default 5)")
    parser.add_argument("--json", action="store_true",
                        help="with status: the full status as JSON, for scripts and monitoring")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                        help="override agent.log_level")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.dry_run and not args.once:
        print("edge-agent: --dry-run works with --once", file=sys.stderr)
        return 2
    from .agent.logs import setup_logging

    quiet = args.once or args.command != "run"  # reports go to stdout; logs only for trouble
    setup_logging(args.log_level or ("warning" if quiet else "info"))
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 2
    except EdgeAgentError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a setting the config checks did not catch: still one line
        print(f"edge-agent: invalid setting: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the disk or a device refused; a sentence, not a traceback
        print(f"edge-agent: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
              file=sys.stderr)
        return 1
    except ImportError as exc:  # a dependency missing or too old: which one, in one line
        if exc.name:
            print(f"edge-agent: cannot import {exc.name} ({exc}); reinstall edge-agent with "
                  "its dependencies (pip install edge-agent)", file=sys.stderr)
        else:
            print(f"edge-agent: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from .agent.logs import setup_logging
    from .config import config_path_from, load_config

    path = config_path_from(args.config)
    config = load_config(path)  # logs its warnings (world-readable secrets) itself
    if args.command == "check-config":
        from .agent.commands import check_config

        return check_config(config, sys.stdout)
    if args.command == "status":
        from .agent.commands import status

        return status(config, sys.stdout, as_json=args.json)
    if args.once:
        from .agent.once import run_once

        if not args.dry_run:
            _check_state_dir(config.agent.state_dir)
        return run_once(config, sys.stdout, dry_run=args.dry_run, wait=args.wait)
    setup_logging(args.log_level or config.agent.log_level)
    _check_state_dir(config.agent.state_dir)
    from .agent.service import Agent

    agent = Agent(config)
    agent.install_signal_handlers()
    return agent.run()


def _check_state_dir(state_dir: str) -> None:
    """The buffer lives here: say plainly when this user cannot use it."""
    try:
        os.makedirs(state_dir, exist_ok=True)
    except OSError as exc:
        raise EdgeAgentError(
            f"cannot create agent.state_dir {state_dir}: {exc.strerror}; create it for this "
            "user (systemd: StateDirectory=) or set agent.state_dir in the config") from None
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise EdgeAgentError(
            f"agent.state_dir {state_dir} is not writable by this user; run as the agent's "
            "user (sudo -u edge-agent edge-agent ...) or set agent.state_dir in the config")


if __name__ == "__main__":
    sys.exit(main())
