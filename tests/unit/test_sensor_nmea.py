"""NMEA 0183: checksum vector, GGA/RMC decoding, errors, emulator."""

from __future__ import annotations

import pytest

from edge_agent.sensors import NMEA
from edge_agent.sensors import nmea as fmt
from edge_agent.sensors.emulated import NmeaEmulator, VirtualClock

GGA = "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
RMC = "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"


def test_checksum_vector():
    assert fmt.checksum(GGA) == "47"
    assert fmt.sentence(GGA) == b"$" + GGA.encode() + b"*47\r\n"


def test_gga_decoded():
    parser = NMEA()
    (reading,) = parser.feed(fmt.sentence(GGA))
    assert reading["latitude"] == pytest.approx(48 + 7.038 / 60, abs=1e-7)
    assert reading["latitude"] == pytest.approx(48.1173, abs=1e-4)
    assert reading["longitude"] == pytest.approx(11 + 31 / 60, abs=1e-7)
    assert reading["fix_quality"] == 1 and reading["satellites"] == 8
    assert reading["hdop"] == 0.9 and reading["altitude"] == 545.4
    assert reading["geoid_separation"] == 46.9


def test_rmc_decoded_and_hemispheres():
    parser = NMEA()
    body = RMC.replace(",N,", ",S,").replace(",E,", ",W,")
    (reading,) = parser.feed(fmt.sentence(body))
    assert reading["valid"] is True
    assert reading["latitude"] == pytest.approx(-48.1173, abs=1e-4)
    assert reading["longitude"] == pytest.approx(-11.516667, abs=1e-6)
    assert reading["speed_knots"] == 22.4 and reading["course"] == 84.4


def test_no_fix_has_no_position():
    parser = NMEA()
    (gga,) = parser.feed(fmt.sentence("GNGGA,000001.00,,,,,0,00,99.99,,,,,,"))
    assert gga == {"fix_quality": 0, "satellites": 0, "hdop": 99.99}
    (rmc,) = parser.feed(fmt.sentence("GNRMC,000001.00,V,,,,,,,010124,,,N"))
    assert rmc == {"valid": False}


def test_bad_checksum_and_garbage_counted():
    parser = NMEA()
    data = (
        b"$" + GGA.encode() + b"*48\r\n"  # wrong checksum
        + b"\x00\xffnoise\r\n"  # garbage line
        + b"xx" + fmt.sentence(GGA)  # noise glued before a good sentence
        + b"$GPGGA,123519,48\r\n"  # no checksum
        + fmt.sentence("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00")
        + fmt.sentence(RMC)
    )
    readings = parser.feed(data)
    assert [sorted(r)[0] for r in readings] == ["altitude", "course"]
    assert parser.errors == 4
    assert parser.skipped == 1  # GSV is not an error


def test_too_long_sentence():
    parser = NMEA()
    long_body = GGA + "," * 30
    assert parser.feed(fmt.sentence(long_body)) == []
    assert "longer than 82" in parser.last_error
    assert len(NMEA({"max_length": 200}).feed(fmt.sentence(long_body))) == 1


def test_bad_coordinates_are_errors():
    parser = NMEA()
    assert parser.feed(fmt.sentence(GGA.replace("4807.038", "4867.038"))) == []
    assert "out of range" in parser.last_error


def test_chunked_and_sentence_filter():
    parser = NMEA({"sentences": ["RMC"]})
    data = fmt.sentence(GGA) + fmt.sentence(RMC)
    readings = []
    for i in range(len(data)):
        readings += parser.feed(data[i : i + 1])
    assert len(readings) == 1 and "speed_knots" in readings[0]
    with pytest.raises(ValueError, match="sentences"):
        NMEA({"sentences": ["GSV"]})


def test_emulator_one_gga_and_rmc_per_interval():
    clock = VirtualClock()
    emulator = NmeaEmulator(clock=clock.now, utc=lambda: 1_700_000_000.0, garbage=0.3, seed=1)
    parser = NMEA()
    readings = []
    for _ in range(10):
        data = emulator.output()
        assert all(len(line) <= 82 for line in data.split(b"\n"))
        readings += parser.feed(data)
        clock.advance(1.0)
    assert len(readings) == 20
    assert all(abs(r["latitude"] - 48.1173) < 0.001 for r in readings)
    gga = [r for r in readings if "fix_quality" in r]
    assert len(gga) == 10 and all(r["fix_quality"] == 1 for r in gga)
