"""Config snippets and the one-line error a bad one gives (unit tests of config/)."""

from __future__ import annotations

from typing import Dict, Optional

import pytest

from edge_agent.config import parse_config
from edge_agent.errors import ConfigError

__all__ = ["BASE", "config_error"]

#: the smallest valid config: every other snippet is appended to it
BASE = "influx:\n  bucket: b\n"


def config_error(text: str, env: Optional[Dict[str, str]] = None) -> str:
    """The ConfigError ``text`` gives (read as conf/edge.yaml); asserts it is one line."""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "conf/edge.yaml", env={} if env is None else env)
    message = str(info.value)
    assert "\n" not in message
    return message
