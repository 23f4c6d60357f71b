"""Coordinate conversion against reference points published by other implementations of the same
public formulas, within a metre (haversine), and round trips."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from alerts.registry import geo

METRE = 1.0

# (wgs_lat, wgs_lon, gcj_lat, gcj_lon): googollee/eviltransform, python/test.py (TESTS: Shanghai,
# Shenzhen, Beijing), https://github.com/googollee/eviltransform/blob/master/python/test.py
EVILTRANSFORM = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),
]

# One point in all three datums: Glatzel/pyxis, python/tests/test_crypto.py (bd09, gcj02, wgs84 as
# (lon, lat) there), https://github.com/Glatzel/pyxis/blob/main/python/tests/test_crypto.py
PYXIS_WGS84 = (30.6107779, 121.0917077)
PYXIS_GCJ02 = (30.608604331756705, 121.09626935575027)
PYXIS_BD09 = (30.61484572185035, 121.10271732371203)

# wandergis/coordtransform README ("示例用法"), input (116.404, 39.915) as (lon, lat):
# wgs84togcj02 -> [116.41024449916938, 39.91640428150164], gcj02tobd09 -> [116.41036949371029,
# 39.92133699351021], bd09togcj02 -> [116.39762729119315, 39.90865673957631];
# https://github.com/wandergis/coordtransform/blob/master/README.md
TIANANMEN = (39.915, 116.404)
WANDERGIS_WGS_TO_GCJ = (39.91640428150164, 116.41024449916938)
WANDERGIS_GCJ_TO_BD = (39.92133699351021, 116.41036949371029)
WANDERGIS_BD_TO_GCJ = (39.90865673957631, 116.39762729119315)


def within_a_metre(got: tuple[float, float], expected: tuple[float, float]) -> bool:
    return geo.distance_m(*got, *expected) < METRE


@pytest.mark.parametrize(("wgs_lat", "wgs_lon", "gcj_lat", "gcj_lon"), EVILTRANSFORM)
def test_gcj02_to_wgs84_lands_within_a_metre_of_the_published_point(wgs_lat: float, wgs_lon: float,
                                                                    gcj_lat: float, gcj_lon: float) -> None:
    assert within_a_metre(geo.gcj02_to_wgs84(gcj_lat, gcj_lon), (wgs_lat, wgs_lon))
    assert within_a_metre(geo.to_wgs84(gcj_lat, gcj_lon, "GCJ-02"), (wgs_lat, wgs_lon))
    assert within_a_metre(geo.wgs84_to_gcj02(wgs_lat, wgs_lon), (gcj_lat, gcj_lon))


def test_one_point_in_all_three_datums_converts_every_way() -> None:
    assert within_a_metre(geo.bd09_to_wgs84(*PYXIS_BD09), PYXIS_WGS84)
    assert within_a_metre(geo.to_wgs84(*PYXIS_BD09, geo.Datum.BD09), PYXIS_WGS84)
    assert within_a_metre(geo.gcj02_to_wgs84(*PYXIS_GCJ02), PYXIS_WGS84)
    assert within_a_metre(geo.bd09_to_gcj02(*PYXIS_BD09), PYXIS_GCJ02)
    assert within_a_metre(geo.wgs84_to_gcj02(*PYXIS_WGS84), PYXIS_GCJ02)
    assert within_a_metre(geo.wgs84_to_bd09(*PYXIS_WGS84), PYXIS_BD09)
    assert within_a_metre(geo.from_wgs84(*PYXIS_WGS84, "bd09"), PYXIS_BD09)


def test_the_coordtransform_readme_values_invert_to_their_input() -> None:
    assert within_a_metre(geo.wgs84_to_gcj02(*TIANANMEN), WANDERGIS_WGS_TO_GCJ)
    assert within_a_metre(geo.gcj02_to_wgs84(*WANDERGIS_WGS_TO_GCJ), TIANANMEN)
    assert within_a_metre(geo.gcj02_to_bd09(*TIANANMEN), WANDERGIS_GCJ_TO_BD)
    assert within_a_metre(geo.bd09_to_gcj02(*WANDERGIS_GCJ_TO_BD), TIANANMEN)
    assert within_a_metre(geo.bd09_to_gcj02(*TIANANMEN), WANDERGIS_BD_TO_GCJ)


def test_the_shift_is_the_few_hundred_metres_that_puts_markers_on_the_wrong_house() -> None:
    assert 100 < geo.distance_m(*PYXIS_WGS84, *PYXIS_GCJ02) < 1000
    assert 500 < geo.distance_m(*PYXIS_WGS84, *PYXIS_BD09) < 2000


@pytest.mark.parametrize("lat", [18.3, 23.1, 30.69, 39.9, 45.75, 53.0])
@pytest.mark.parametrize("lon", [75.9, 87.6, 104.1, 111.29, 121.5, 135.0])
def test_round_trips_come_back_to_the_same_house(lat: float, lon: float) -> None:
    assert geo.distance_m(*geo.gcj02_to_wgs84(*geo.wgs84_to_gcj02(lat, lon)), lat, lon) < 0.01
    assert geo.distance_m(*geo.bd09_to_wgs84(*geo.wgs84_to_bd09(lat, lon)), lat, lon) < 0.01
    assert geo.distance_m(*geo.bd09_to_gcj02(*geo.gcj02_to_bd09(lat, lon)), lat, lon) < 0.01


@pytest.mark.parametrize(("lat", "lon"), [(51.5007, -0.1246), (35.6586, 139.7454), (-33.8568, 151.2153)])
def test_points_outside_china_are_not_shifted(lat: float, lon: float) -> None:
    for datum in geo.Datum:
        assert geo.to_wgs84(lat, lon, datum) == (lat, lon)
        assert geo.from_wgs84(lat, lon, datum) == (lat, lon)


def test_datum_names_are_read_loosely_and_unknown_ones_refused() -> None:
    assert geo.Datum.parse("WGS-84") is geo.Datum.WGS84
    assert geo.Datum.parse(" gcj_02 ") is geo.Datum.GCJ02
    assert geo.Datum.parse("BD09") is geo.Datum.BD09
    with pytest.raises(ValueError, match="unknown datum"):
        geo.Datum.parse("cgcs2000")


def test_the_amap_link_carries_gcj02_coordinates_and_the_geo_link_wgs84() -> None:
    link = urlparse(geo.amap_link(*PYXIS_WGS84, "王秀英 1号楼"))
    assert (link.scheme, link.netloc, link.path) == ("https", "uri.amap.com", "/marker")
    query = parse_qs(link.query)
    lon, lat = (float(v) for v in query["position"][0].split(","))
    assert within_a_metre((lat, lon), PYXIS_GCJ02)
    assert query["coordinate"] == ["gaode"] and query["name"] == ["王秀英 1号楼"]
    assert geo.geo_link(*PYXIS_WGS84) == "geo:30.610778,121.091708"
