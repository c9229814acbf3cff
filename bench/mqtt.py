"""The MQTT bridge's throughput and memory, as ratios against a bare paho subscriber.

    .venv/bin/python bench/mqtt.py [--qos0 100000] [--qos1 50000] [--repeat 1]

(a count of 0 skips that QoS, e.g. ``--qos1 0`` to profile QoS 0 alone).

One private mosquitto with its default limits (max_inflight_messages 20,
max_queued_messages 1000; the harness only adds a listener and persistence)
and one private influxd, both started here. For each QoS, in one run:

* baseline: a bare paho-mqtt subscriber process (MQTT 5, the same protocol as
  the agent; auto-ack for QoS 1) counts what it receives; its rate is
  received / (last receive - first receive).
* agent: ``edge-agent -c`` (a subscription of format ``value``, default write
  settings) on the same broker; its end-to-end rate is points in InfluxDB /
  (moment the last point was visible in InfluxDB - first receive time), the
  first receive time being the smallest timestamp stored (points carry their
  receive time). Its receive rate (points / receive-time span) is shown too.
  RSS of the agent: VmRSS sampled every 0.1 s during the run (max), and VmHWM.

The publisher is a separate process publishing as fast as paho allows; each
subscriber is saturated the whole time (when it falls behind, the broker
queues and, beyond its limits, drops: those counts are reported, not hidden).
Targets: QoS 0 end-to-end >= 80% of the bare rate; QoS 1 ack-after-commit >=
50% of the bare auto-acking rate; agent RSS < 60 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.servers import InfluxServer, MosquittoServer  # noqa: E402

PYTHON = sys.executable
EDGE_AGENT = str(Path(PYTHON).with_name("edge-agent"))
PROFILE = os.environ.get("BENCH_PROFILE_DIR", "")  # set: py-spy the agent into this dir
TARGETS = {"qos0_ratio": 0.80, "qos1_ratio": 0.50, "rss_mb": 60.0}


# -- child processes: publisher and bare subscriber ------------------------------------


def run_publisher(port: int, topic: str, qos: int, count: int) -> None:
    """Publish ``count`` numbered messages as fast as paho allows; print the rate."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{os.getpid()}")
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    info = None
    for i in range(count):
        info = client.publish(f"{topic}/s{i % 8}", str(i), qos=qos)
        if qos and i % 1000 == 999:
            info.wait_for_publish(60)  # keep paho's own queue bounded
    if info is not None:
        info.wait_for_publish(120)
    elapsed = time.perf_counter() - start
    time.sleep(0.2)  # QoS 0: let the socket drain before disconnecting
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"published": count, "seconds": elapsed, "rate": count / elapsed}))


def run_bare(port: int, topic: str, qos: int, count: int, idle: float) -> None:
    """Subscribe (auto-ack), print "ready", count until ``count`` or ``idle`` s of silence."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.subscribeoptions import SubscribeOptions

    state: Dict[str, Any] = {"n": 0, "first": 0.0, "last": 0.0}

    def on_connect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        c.subscribe([(f"{topic}/#", SubscribeOptions(qos=qos))])

    def on_subscribe(c: Any, u: Any, mid: int, reasons: Any, props: Any) -> None:
        print("ready", flush=True)

    def on_message(c: Any, u: Any, msg: Any) -> None:
        now = time.time()
        if not state["n"]:
            state["first"] = now
        state["n"] += 1
        state["last"] = now

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bare-{os.getpid()}",
                         protocol=mqtt.MQTTv5)
    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, \
        on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    while True:
        time.sleep(0.05)
        n, last = state["n"], state["last"]
        if n >= count or (n and time.time() - last > idle):
            break
    client.disconnect()
    client.loop_stop()
    span = state["last"] - state["first"]
    print(json.dumps({"received": state["n"], "seconds": span,
                      "rate": state["n"] / span if span > 0 else 0.0}), flush=True)


# -- the parent: servers, agent, measurements --------------------------------------------


def proc_status(pid: int, key: str) -> float:
    """A /proc/<pid>/status value in MiB (VmRSS, VmHWM); 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def publish(port: int, topic: str, qos: int, count: int) -> Dict[str, Any]:
    out = subprocess.run([PYTHON, __file__, "--child", "publish", "--port", str(port),
                          "--topic", topic, "--qos-level", str(qos), "--count", str(count)],
                         capture_output=True, text=True, check=True, timeout=600)
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def bench_bare(broker: MosquittoServer, qos: int, count: int) -> Dict[str, Any]:
    topic = f"bare{uuid.uuid4().hex[:6]}"
    sub = subprocess.Popen([PYTHON, __file__, "--child", "bare", "--port", str(broker.port),
                            "--topic", topic, "--qos-level", str(qos), "--count", str(count)],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    assert sub.stdout.readline().strip() == "ready"
    pub = publish(broker.port, topic, qos, count)
    out, _ = sub.communicate(timeout=600)
    result: Dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["publisher_rate"] = pub["rate"]
    return result


def agent_config(tmp: Path, broker: MosquittoServer, influx: InfluxServer, db: str,
                 topic: str, qos: int) -> Path:
    state = tmp / f"state-{topic}"
    path = tmp / f"agent-{topic}.yaml"
    path.write_text(f"""agent: {{name: bench, state_dir: {state}, internal_metrics: 0s}}
tags: {{site: bench}}
influx: {{url: '{influx.url}', api: v1, bucket: {db}}}
sources:
  - name: bridge
    type: mqtt
    url: {broker.url}
    client_id: edge-bench-{topic}
    qos: {qos}
    subscriptions:
      - {{topic: '{topic}/{{stream}}', format: value, measurement: {topic}, field: n}}
""")
    return path


def influx_count(influx: InfluxServer, db: str, measurement: str) -> int:
    rows = influx.rows(db, f'SELECT count("n") FROM "{measurement}"')
    return int(rows[0]["count"]) if rows else 0


def bench_agent(broker: MosquittoServer, influx: InfluxServer, tmp: Path, qos: int,
                count: int, idle: float) -> Dict[str, Any]:
    topic = f"agent{uuid.uuid4().hex[:6]}"
    db = topic
    influx.create_database(db)
    config = agent_config(tmp, broker, influx, db, topic, qos)
    with open(tmp / f"{topic}.log", "wb") as log:
        agent = subprocess.Popen([EDGE_AGENT, "-c", str(config)], stdout=log,
                                 stderr=subprocess.STDOUT, cwd=tmp)
    status = tmp / f"state-{topic}" / "status.json"
    deadline = time.monotonic() + 30
    while True:  # connected and subscribed (status.json is rewritten every 2 s)
        try:
            if any(s.get("connected") for s in json.loads(status.read_text())["sources"]):
                break
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"agent did not connect: {(tmp / f'{topic}.log').read_text()}")
        time.sleep(0.1)
    time.sleep(0.3)
    spy = None
    if PROFILE:  # py-spy (pip install py-spy): where the agent's time goes under this load
        spy = subprocess.Popen([str(Path(PYTHON).with_name("py-spy")), "record", "-f", "raw",
                                "-r", "200", "-o", str(Path(PROFILE) / f"qos{qos}.txt"),
                                "--pid", str(agent.pid)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    rss: List[float] = []
    curve: List[Tuple[float, int]] = []  # (wall time, points in InfluxDB)
    pub_proc = subprocess.Popen([PYTHON, __file__, "--child", "publish", "--port",
                                 str(broker.port), "--topic", topic, "--qos-level", str(qos),
                                 "--count", str(count)], stdout=subprocess.PIPE, text=True)
    last_count, last_change = 0, time.time()
    while True:
        rss.append(proc_status(agent.pid, "VmRSS"))
        n = influx_count(influx, db, topic)
        now = time.time()
        curve.append((now, n))
        if n != last_count:
            last_count, last_change = n, now
        if n >= count or (pub_proc.poll() is not None and now - last_change > idle):
            break
        time.sleep(0.1)
    out, _ = pub_proc.communicate(timeout=600)
    pub = json.loads(out.strip().splitlines()[-1])
    hwm = proc_status(agent.pid, "VmHWM")
    if spy is not None:
        spy.send_signal(2)
        spy.wait(60)
    agent.terminate()
    agent.wait(60)
    stamps = influx.rows(db, f'SELECT first("n") FROM "{topic}"')[0]["time"], \
        influx.rows(db, f'SELECT last("n") FROM "{topic}"')[0]["time"]
    first, last = stamps[0] / 1e9, stamps[1] / 1e9
    final = influx_count(influx, db, topic)
    distinct = influx.rows(db, f'SELECT count(distinct("n")) FROM "{topic}"')[0]["count"]
    # Steady state: from 10% to 90% of the stored points (no start-up, no last
    # partial batch waiting for flush_interval).
    t10 = next(t for t, n in curve if n >= 0.1 * final)
    t90, n90 = next((t, n) for t, n in curve if n >= 0.9 * final)
    n10 = next(n for t, n in curve if n >= 0.1 * final)
    return {
        "steady_rate": (n90 - n10) / (t90 - t10) if t90 > t10 else 0.0,
        "stored": final, "distinct": int(distinct), "publisher_rate": pub["rate"],
        "e2e_rate": last_count / (last_change - first),
        "receive_rate": final / (last - first) if last > first else 0.0,
        "rss_max": max(rss), "rss_hwm": hwm,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qos0", type=int, default=100_000, help="messages in the QoS 0 runs")
    parser.add_argument("--qos1", type=int, default=50_000, help="messages in the QoS 1 runs")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--idle", type=float, default=3.0,
                        help="seconds without progress that end a run")
    parser.add_argument("--child", choices=("publish", "bare"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--topic")
    parser.add_argument("--qos-level", type=int, default=0)
    parser.add_argument("--count", type=int)
    args = parser.parse_args()
    if args.child == "publish":
        return run_publisher(args.port, args.topic, args.qos_level, args.count)
    if args.child == "bare":
        return run_bare(args.port, args.topic, args.qos_level, args.count, args.idle)

    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()} {os.cpu_count()} CPUs, "
          f"Linux {platform.release()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp_name:
        tmp = Path(tmp_name)
        broker = MosquittoServer(tmp / "mosquitto")
        influx = InfluxServer(tmp / "influxd")
        broker.start()
        influx.start()
        try:
            for run in range(args.repeat):
                for qos, count in ((0, args.qos0), (1, args.qos1)):
                    if count <= 0:  # --qos1 0: only the QoS 0 measurement
                        continue
                    bare = bench_bare(broker, qos, count)
                    agent = bench_agent(broker, influx, tmp, qos, count, args.idle)
                    report(run, qos, count, bare, agent)
        finally:
            broker.stop()
            influx.stop()


def report(run: int, qos: int, count: int, bare: Dict[str, Any], agent: Dict[str, Any]
           ) -> None:
    target = TARGETS[f"qos{qos}_ratio"]
    ratio = agent["e2e_rate"] / bare["rate"]
    print(f"\nrun {run + 1}, QoS {qos}, {count} messages published")
    print(f"  bare paho subscriber: {bare['received']:>7} received  {bare['rate']:>8,.0f} msg/s"
          f"  (publisher {bare['publisher_rate']:,.0f} msg/s)")
    print(f"  edge-agent -> influx: {agent['stored']:>7} stored    {agent['e2e_rate']:>8,.0f} "
          f"msg/s end to end ({agent['steady_rate']:,.0f} steady 10-90%), "
          f"{agent['receive_rate']:,.0f} msg/s received "
          f"(publisher {agent['publisher_rate']:,.0f} msg/s; distinct {agent['distinct']})")
    print(f"  ratio {ratio:.2f} end to end, {agent['steady_rate'] / bare['rate']:.2f} steady, "
          f"{agent['receive_rate'] / bare['rate']:.2f} received (target >= {target:.2f}: "
          f"{'met' if ratio >= target else 'MISSED'}); agent RSS max {agent['rss_max']:.1f} MiB,"
          f" VmHWM {agent['rss_hwm']:.1f} MiB (target < {TARGETS['rss_mb']:.0f} MB: "
          f"{'met' if agent['rss_hwm'] * 1.048576 < TARGETS['rss_mb'] else 'MISSED'})")


if __name__ == "__main__":
    main()
