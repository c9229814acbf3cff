"""PMS5003 frames: checksum, decode, resync on garbage, chunked feeding, commands."""

from __future__ import annotations

import random

import pytest

from edge_agent.sensors import PMS5003
from edge_agent.sensors import pms5003 as fmt
from edge_agent.sensors.emulated import Pms5003Emulator, VirtualClock

VALUES = dict(zip(fmt.FIELDS, (5, 12, 18, 5, 11, 17, 1200, 350, 80, 10, 3, 1)))


def test_frame_layout_and_checksum():
    frame = fmt.encode(VALUES)
    assert len(frame) == 32
    assert frame[:4] == b"\x42\x4d\x00\x1c"
    assert int.from_bytes(frame[30:], "big") == sum(frame[:30])
    assert fmt.decode(frame) == VALUES


def test_command_frames():
    assert fmt.command(fmt.CMD_READ) == bytes.fromhex("424de2000001 71".replace(" ", ""))
    assert fmt.command(fmt.CMD_MODE, 0) == bytes.fromhex("424de100000170")
    assert fmt.command(fmt.CMD_MODE, 1) == bytes.fromhex("424de100010171")
    assert PMS5003({"mode": "passive"}).request() == fmt.command(fmt.CMD_READ)
    assert PMS5003().request() == b""
    assert PMS5003({"mode": "passive"}).startup() == fmt.command(fmt.CMD_MODE, 0)


def test_bad_checksum_is_counted_not_returned():
    frame = bytearray(fmt.encode(VALUES))
    frame[10] ^= 0x40
    parser = PMS5003()
    assert parser.feed(bytes(frame) + fmt.encode(VALUES)) == [VALUES]
    assert parser.errors == 1 and "checksum" in parser.last_error


def test_resync_on_garbage_between_frames():
    garbage = [b"\x00\xff\x42", b"\x42\x4d\x00\x1c\x01", b"\x42\x4d\x12\x34", b"BM\x42"]
    stream = b"".join(g + fmt.encode(VALUES) for g in garbage) + b"\x42"
    parser = PMS5003()
    assert parser.feed(stream) == [VALUES] * len(garbage)
    assert parser.skipped_bytes > 0


@pytest.mark.parametrize("seed", range(5))
def test_chunked_feeding_with_random_garbage(seed):
    rng = random.Random(seed)
    frames = []
    stream = b""
    for i in range(20):
        values = {**VALUES, "pm2_5": i}
        frames.append(values)
        stream += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        stream += fmt.encode(values)
    parser = PMS5003()
    got = []
    pos = 0
    while pos < len(stream):
        size = rng.randint(1, 50)
        got += parser.feed(stream[pos : pos + size])
        pos += size
    # random garbage can hide a frame only by forging a header and checksum
    assert got == frames


def test_short_ack_frames_are_not_readings_or_errors():
    body = fmt.START + b"\x00\x04\xe1\x00"
    ack = body + fmt.checksum(body).to_bytes(2, "big")
    parser = PMS5003()
    assert parser.feed(ack + fmt.encode(VALUES)) == [VALUES]
    assert parser.errors == 0


def test_emulator_frames_parse_and_passive_mode():
    clock = VirtualClock()
    emulator = Pms5003Emulator(clock=clock.now, interval=1.0, garbage=0.5, seed=3)
    parser = PMS5003()
    readings = []
    for _ in range(30):
        clock.advance(1.0)
        readings += parser.feed(emulator.output())
    assert len(readings) == 31 and emulator.garbage_bytes > 0  # one at start, one per second
    assert all(0 < r["pm2_5"] < 100 for r in readings)
    # passive: silent until asked
    passive = PMS5003({"mode": "passive"})
    emulator.receive(passive.startup())
    assert passive.feed(emulator.output()) == []  # the ack
    clock.advance(5)
    assert passive.feed(emulator.output()) == []
    emulator.receive(passive.request())
    assert len(passive.feed(emulator.output())) == 1


def test_emulator_cadence():
    clock = VirtualClock()
    emulator = Pms5003Emulator(clock=clock.now, interval=1.0)
    assert len(emulator.output()) == 32  # first frame at start
    clock.advance(0.5)
    assert emulator.output() == b""
    clock.advance(2.5)  # t = 3.0: frames due at 1, 2, 3
    assert len(emulator.output()) == 96
    assert emulator.next_due() == pytest.approx(clock.now() + 1.0)


def test_bad_option():
    with pytest.raises(ValueError, match="mode"):
        PMS5003({"mode": "lazy"})
