"""Coordinates in China: WGS-84, GCJ-02 and BD-09, and the map links grid workers open. Pure.

Shouwang stores WGS-84. Chinese map pickers and Amap give GCJ-02 (the "Mars" datum, shifted by
roughly 100-700 m), Baidu gives BD-09 (a second shift on top of GCJ-02). The forward formulas are the
public ones (as in the eviltransform and coordtransform libraries); GCJ-02 has no closed-form inverse,
so :func:`gcj02_to_wgs84` inverts the forward formula by fixed-point iteration to a few millimetres,
and :func:`bd09_to_gcj02` refines the usual closed-form inverse the same way. Points outside China's
bounding box are not shifted, as the published formulas do. Every function takes and returns
``(latitude, longitude)`` in degrees.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from urllib.parse import quote

_A = 6378245.0  # semi-major axis of the Krasovsky 1940 ellipsoid, as the GCJ-02 formula has it
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0
_EARTH_RADIUS_M = 6371008.8  # mean radius, for distances
_TOLERANCE_DEG = 1e-10  # about 0.01 mm: the iterations stop well below a metre
_MAX_ITERATIONS = 30


class Datum(enum.StrEnum):
    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"

    @classmethod
    def parse(cls, value: str) -> Datum:
        """Accepts ``wgs84``, ``WGS-84``, ``gcj02``, ``GCJ-02``, ``bd09``, ``BD-09`` (any case)."""
        key = value.strip().lower().replace("-", "").replace("_", "")
        try:
            return cls(key)
        except ValueError:
            raise ValueError(f"unknown datum {value!r}: use wgs84, gcj02 or bd09") from None


def out_of_china(lat: float, lon: float) -> bool:
    """The bounding box the published formulas use; outside it nothing is shifted."""
    return not (72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _shift(x: float, y: float) -> tuple[float, float]:
    """The GCJ-02 offset polynomial, in metres-ish units; ``x`` = lon - 105, ``y`` = lat - 35."""
    common = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x)) + common
    d_lat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    d_lat += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x)) + common
    d_lon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    d_lon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return d_lat, d_lon


def _gcj_delta(lat: float, lon: float) -> tuple[float, float]:
    d_lat, d_lon = _shift(lon - 105.0, lat - 35.0)
    rad_lat = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad_lat) ** 2
    sqrt_magic = math.sqrt(magic)
    d_lat = (d_lat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrt_magic) * math.pi)
    d_lon = (d_lon * 180.0) / (_A / sqrt_magic * math.cos(rad_lat) * math.pi)
    return d_lat, d_lon


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    if out_of_china(lat, lon):
        return lat, lon
    d_lat, d_lon = _gcj_delta(lat, lon)
    return lat + d_lat, lon + d_lon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """The WGS-84 point whose GCJ-02 image is ``(lat, lon)``, found by fixed-point iteration (the
    shift varies slowly, so each step gains several digits; the one-step inverse alone is 1-2 m off)."""
    if out_of_china(lat, lon):
        return lat, lon
    return _invert(wgs84_to_gcj02, lat, lon, (lat, lon))


def _invert(forward: Callable[[float, float], tuple[float, float]], lat: float, lon: float,
            guess: tuple[float, float]) -> tuple[float, float]:
    """The point that ``forward`` maps to ``(lat, lon)``, by fixed-point iteration from ``guess``."""
    x_lat, x_lon = guess
    for _ in range(_MAX_ITERATIONS):
        f_lat, f_lon = forward(x_lat, x_lon)
        e_lat, e_lon = f_lat - lat, f_lon - lon
        x_lat, x_lon = x_lat - e_lat, x_lon - e_lon
        if abs(e_lat) < _TOLERANCE_DEG and abs(e_lon) < _TOLERANCE_DEG:
            break
    return x_lat, x_lon


def gcj02_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    if out_of_china(lat, lon):
        return lat, lon
    z = math.hypot(lon, lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065


def _bd09_to_gcj02_closed_form(lat: float, lon: float) -> tuple[float, float]:
    x, y = lon - 0.0065, lat - 0.006
    z = math.hypot(x, y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.sin(theta), z * math.cos(theta)


def bd09_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """The published closed-form inverse, refined so that :func:`gcj02_to_bd09` maps it back exactly."""
    if out_of_china(lat, lon):
        return lat, lon
    return _invert(gcj02_to_bd09, lat, lon, _bd09_to_gcj02_closed_form(lat, lon))


def wgs84_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lat, lon))


def bd09_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))


def to_wgs84(lat: float, lon: float, datum: Datum | str) -> tuple[float, float]:
    """A point given in ``datum``, in WGS-84 (what Shouwang stores)."""
    convert = _TO_WGS84.get(Datum.parse(str(datum)))
    return convert(lat, lon) if convert else (lat, lon)


def from_wgs84(lat: float, lon: float, datum: Datum | str) -> tuple[float, float]:
    """A WGS-84 point in ``datum`` (for a map whose tiles are in that datum)."""
    convert = _FROM_WGS84.get(Datum.parse(str(datum)))
    return convert(lat, lon) if convert else (lat, lon)


_TO_WGS84 = {Datum.GCJ02: gcj02_to_wgs84, Datum.BD09: bd09_to_wgs84}
_FROM_WGS84 = {Datum.GCJ02: wgs84_to_gcj02, Datum.BD09: wgs84_to_bd09}


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine on the mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def amap_link(lat: float, lon: float, name: str = "") -> str:
    """An Amap (高德) marker URI for a WGS-84 point: Amap wants GCJ-02 (``coordinate=gaode``)."""
    g_lat, g_lon = wgs84_to_gcj02(lat, lon)
    return (f"https://uri.amap.com/marker?position={g_lon:.6f},{g_lat:.6f}&name={quote(name, safe='')}"
            "&coordinate=gaode")


def geo_link(lat: float, lon: float) -> str:
    """A plain RFC 5870 ``geo:`` URI (WGS-84), which any map app on the phone can open."""
    return f"geo:{lat:.6f},{lon:.6f}"
