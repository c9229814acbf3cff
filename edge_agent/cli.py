"""``edge-agent``: the command line (placeholder until the agent lands)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import __version__


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-agent")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.parse_args(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
