"""``edge-agent status`` text: what a technician reads over SSH (80 columns)."""

from __future__ import annotations

from typing import Any, Dict

from edge_agent.agent.status_view import DrainMeter, ago, render

NOW = 1_800_000_000.0


def live(**over: Any) -> Dict[str, Any]:
    data: Dict[str, Any] = {
        "live": True, "pid": 4242, "time": NOW - 1, "started": NOW - 7300,
        "buffer": {"points": 0, "segments": 0, "bytes": 0, "oldest": None},
        "counters": {"accepted": 10, "written": 10, "last_success": NOW - 2},
        "delivery": {"url": "http://influx.local:8086", "rate": None},
        "sources": [], "dead_letters": [],
    }
    data.update(over)
    return data


def test_every_line_fits_80_columns_and_says_running() -> None:
    src = {"name": "a-very-long-source-name", "state": "error", "last_time": NOW - 5,
           "points": 3, "errors": 9, "last_error": "x" * 200}
    lines = render(live(sources=[src]), NOW)
    assert lines[0] == "agent: running, pid 4242, up 2h01m (status 1 s old)"
    assert all(len(line) <= 80 for line in lines), lines
    assert any(line.startswith("    last error: xxx") for line in lines)


def test_a_read_that_hung_is_shown_with_how_long() -> None:
    hung = {"name": "climate", "state": "ok", "busy_since": NOW - 42, "last_time": NOW - 44,
            "points": 7, "errors": 0}
    idle = dict(hung, name="light", busy_since=0.0, last_time=NOW - 1)
    lines = render(live(sources=[hung, idle]), NOW)
    assert "  climate      HUNG     last reading 44 s ago, 7 points, 0 errors" in lines
    assert "    a read has not returned for 42 s" in lines
    assert "  light        ok       last reading 1 s ago, 7 points, 0 errors" in lines


def test_a_draining_backlog_shows_rate_and_time_to_empty() -> None:
    data = live(buffer={"points": 12_000, "segments": 12, "bytes": 3 * 1024 * 1024,
                        "oldest": NOW - 185},
                delivery={"url": "http://influx.local:8086", "rate": 400.0})
    lines = render(data, NOW)
    assert "buffer: 12,000 points (3.0 MiB) on disk, oldest 3m05s old" in lines
    assert "  draining 400 points/s, empty in about 30 s" in lines


def test_a_stalled_backlog_says_it_is_not_draining_and_why() -> None:
    counters = {"accepted": 50, "written": 20, "last_success": NOW - 600,
                "last_error": "cannot reach http://influx.local:8086: connection refused"}
    data = live(buffer={"points": 30, "segments": 1, "bytes": 4096, "oldest": NOW - 600},
                counters=counters)
    lines = render(data, NOW)
    assert "  not draining: nothing delivered in the last 30 s (see last error)" in lines
    assert "http://influx.local:8086: last success 10m00s ago" in lines
    assert "  last error: cannot reach http://influx.local:8086: connection refused" in lines


def test_rejected_mqtt_messages_show_count_and_last_reason() -> None:
    bridge = {"name": "zigbee", "connected": True, "unacked": 0, "queued": 0,
              "messages_unmatched": 0, "qos0_dropped": 0,
              "rejected_files": ["/var/lib/edge-agent/mqtt-zigbee-rejected.jsonl"],
              "subscriptions": {"zigbee2mqtt/{device}": {
                  "messages_received": 120, "points": 115, "messages_rejected": 5,
                  "fields_dropped": 2, "last_reject_topic": "zigbee2mqtt/x",
                  "last_reject_time": NOW - 60, "last_reject_reason": "invalid JSON: " + "x" * 90}}}
    lines = render(live(sources=[bridge]), NOW)
    assert all(len(line) <= 80 for line in lines), lines
    at = lines.index("  zigbee       connected    unacked 0, queued 0")
    assert lines[at + 1:at + 5] == [
        "    mqtt zigbee: 5 rejected, 0 unmatched, 0 QoS 0 dropped",
        "      rejected messages in /var/lib/edge-agent/mqtt-zigbee-rejected.jsonl",
        "    subscription 'zigbee2mqtt/{device}': 120 received, 115 points, 5 rejected",
        "      2 fields dropped"]
    assert lines[at + 5].startswith("      last rejected ") and \
        lines[at + 5].endswith(" on 'zigbee2mqtt/x':")
    # a long reason wraps below its own indent instead of being cut
    assert lines[at + 6].startswith("        invalid JSON: xxx")
    assert lines[at + 7].startswith("          xxx")


def test_not_running_reads_the_disk() -> None:
    data = {"live": False, "buffer": {"points": 0, "segments": 0, "bytes": 0, "oldest": None},
            "counters": {}, "sources": [], "dead_letters": []}
    assert render(data, NOW)[:2] == ["agent: not running",
                                     "buffer: empty (everything accepted has been delivered)"]


def test_ago_and_drain_meter() -> None:
    assert [ago(s) for s in (None, 5, 65, 7260, 90000)] == [
        "never", "5 s", "1m05s", "2h01m", "1d01h"]
    meter = DrainMeter(window=30)
    assert meter.sample(100.0, 0) is None
    assert meter.sample(110.0, 1000) == 100.0
    # old samples leave the window: the rate is of the last 30 s only
    for t in range(120, 200, 10):
        rate = meter.sample(float(t), 1000)
    assert rate == 0.0
