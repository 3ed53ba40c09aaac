"""NGSI-LD geo-queries (ETSI GS CIM 009 clause 4.10): ``georel``, ``geometry``, ``coordinates``,
``geoproperty``, checked strictly and evaluated with shapely (GEOS's DE-9IM predicates).

- ``georel``: ``near;maxDistance==N`` or ``near;minDistance==N`` (metres, N > 0), ``within``,
  ``contains``, ``intersects``, ``disjoint``, ``equals``, ``overlaps``. The relation is read
  "the entity's geometry *georel* the query's geometry" (``within``: the entity lies inside).
- ``geometry``: ``Point``, ``MultiPoint``, ``LineString``, ``MultiLineString``, ``Polygon``,
  ``MultiPolygon``, with ``coordinates`` as GeoJSON's JSON array ([longitude, latitude], WGS 84):
  positions are two or three numbers within range, rings closed with at least four positions,
  lines at least two. A self-intersecting polygon is accepted (the ETSI test suite's own cases
  019_11_01 and 019_11_06 use such polygons) and related as GEOS relates it, or through
  ``make_valid`` where GEOS cannot.
- ``geoproperty``: the GeoProperty compared, ``location`` by default.

Distances are metres on the sphere (haversine) between points; between other shapes, on a local
equirectangular projection around the query's geometry (good to well under 1 % within a
prefecture). Anything else is a BadRequestData problem naming the parameter.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import make_valid

from connector.ngsi_ld.problems import bad_request

EARTH_RADIUS_M = 6_371_008.8
GEOREL_NAMES = ("near", "within", "contains", "intersects", "disjoint", "equals", "overlaps")
DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2,
         "MultiPolygon": 3}
MAX_COORDINATES = 100_000    # characters of the coordinates parameter
_DISTANCE = re.compile(r"(maxDistance|minDistance)==([0-9]+(?:\.[0-9]+)?)\Z")


@dataclass(frozen=True)
class GeoQuery:
    georel: str
    geometry: BaseGeometry
    geoproperty: str = "location"
    max_distance: float | None = None
    min_distance: float | None = None
    _origin: tuple[float, float] = field(default=(0.0, 0.0), compare=False)

    def matches(self, entity: dict[str, Any]) -> bool:
        if self.georel == "near" and isinstance(self.geometry, Point):
            position = _point_of(entity, self.geoproperty)
            if position is not None:     # the usual case, without building a shapely Point
                if self.max_distance is not None and \
                        abs(position[1] - self.geometry.y) * 111_000 > self.max_distance * 1.01:
                    return False         # further north or south than the distance allows
                d = haversine(position[0], position[1], self.geometry.x, self.geometry.y)
                return (self.max_distance is None or d <= self.max_distance) and \
                    (self.min_distance is None or d >= self.min_distance)
        geom = entity_geometry(entity, self.geoproperty)
        if geom is None:
            return False
        if self.georel == "near":
            d = self.distance(geom)
            return (self.max_distance is None or d <= self.max_distance) and \
                (self.min_distance is None or d >= self.min_distance)
        try:
            return _PREDICATES[self.georel](geom, self.geometry)
        except shapely.errors.GEOSException:     # a self-intersecting polygon GEOS cannot relate
            return _PREDICATES[self.georel](make_valid(geom), make_valid(self.geometry))

    def distance(self, geom: BaseGeometry) -> float:
        if isinstance(geom, Point) and isinstance(self.geometry, Point):
            return haversine(geom.x, geom.y, self.geometry.x, self.geometry.y)
        lon0, lat0 = self._origin
        k = math.cos(math.radians(lat0))
        m = math.pi * EARTH_RADIUS_M / 180

        def project(g: BaseGeometry) -> BaseGeometry:
            return shapely.transform(g, lambda c: (c - [lon0, lat0]) * [k * m, m])

        return float(project(geom).distance(project(self.geometry)))


_PREDICATES = {"within": BaseGeometry.within, "contains": BaseGeometry.contains,
               "intersects": BaseGeometry.intersects, "disjoint": BaseGeometry.disjoint,
               "equals": BaseGeometry.equals, "overlaps": BaseGeometry.overlaps}


def haversine(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _check_positions(value: Any, depth: int, path: str) -> None:
    if depth == 0:
        if not isinstance(value, list) or len(value) not in (2, 3) or not all(
                isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c)
                for c in value):
            raise bad_request(f"coordinates{path}: a position is [longitude, latitude] (two or "
                              f"three numbers), not {json.dumps(value)[:60]}", parameter="coordinates")
        lon, lat = value[0], value[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise bad_request(f"coordinates{path}: [{lon}, {lat}] is outside longitude -180..180, "
                              "latitude -90..90 (GeoJSON order is [longitude, latitude])",
                              parameter="coordinates")
        return
    if not isinstance(value, list) or not value:
        raise bad_request(f"coordinates{path}: expected a non-empty array at this level",
                          parameter="coordinates")
    for i, item in enumerate(value):
        _check_positions(item, depth - 1, f"{path}[{i}]")


def parse_geometry(kind: str, coordinates: Any) -> BaseGeometry:
    """A shapely geometry from a GeoJSON type and its coordinates, checked (see the module)."""
    if kind not in DEPTH:
        raise bad_request(f"geometry {kind!r} is not one of {', '.join(DEPTH)}", parameter="geometry")
    _check_positions(coordinates, DEPTH[kind], "")
    rings = {"Polygon": [coordinates], "MultiPolygon": coordinates}.get(kind, [])
    for polygon in rings:
        for ring in polygon:
            if len(ring) < 4 or ring[0] != ring[-1]:
                raise bad_request("coordinates: a polygon's ring needs at least four positions and "
                                  "must end where it starts", parameter="coordinates")
    if kind in ("LineString", "MultiLineString"):
        lines = [coordinates] if kind == "LineString" else coordinates
        if any(len(line) < 2 for line in lines):
            raise bad_request("coordinates: a line needs at least two positions",
                              parameter="coordinates")
    try:
        return shape({"type": kind, "coordinates": coordinates})
    except (ValueError, TypeError, shapely.errors.GEOSException) as exc:
        raise bad_request(f"coordinates: not a {kind}: {exc}", parameter="coordinates") from None


def parse_georel(text: str) -> tuple[str, float | None, float | None]:
    name, _, rest = text.partition(";")
    if name not in GEOREL_NAMES:
        raise bad_request(f"georel {name!r} is not one of {', '.join(GEOREL_NAMES)}",
                          parameter="georel")
    if name != "near":
        if rest:
            raise bad_request(f"georel {name} takes no modifier ({rest!r})", parameter="georel")
        return name, None, None
    max_d = min_d = None
    for part in rest.split(";") if rest else []:
        m = _DISTANCE.match(part)
        if not m or float(m.group(2)) <= 0:
            raise bad_request(f"georel near: {part!r} is not maxDistance==N or minDistance==N with "
                              "N a positive number of metres", parameter="georel")
        if m.group(1) == "maxDistance":
            max_d = float(m.group(2))
        else:
            min_d = float(m.group(2))
    if max_d is None and min_d is None:
        raise bad_request("georel near needs maxDistance==N or minDistance==N (metres)",
                          parameter="georel")
    return name, max_d, min_d


def parse_geoquery(georel: str | None, geometry: str | None, coordinates: Any,
                   geoproperty: str | None = None) -> GeoQuery | None:
    """A GeoQuery from the request's parameters; None when none is given. ``coordinates`` is the
    parameter's text (GET) or the already-parsed JSON array (POST's geoQ)."""
    given = {"georel": georel, "geometry": geometry, "coordinates": coordinates}
    if all(v in (None, "") for v in given.values()):
        if geoproperty:
            raise bad_request("geoproperty is given without georel, geometry and coordinates",
                              parameter="geoproperty")
        return None
    missing = [k for k, v in given.items() if v in (None, "")]
    if missing:
        raise bad_request(f"a geo-query needs georel, geometry and coordinates; missing: "
                          f"{', '.join(missing)}", parameter=missing[0])
    assert georel is not None and geometry is not None
    name, max_d, min_d = parse_georel(georel)
    if isinstance(coordinates, str):
        if len(coordinates) > MAX_COORDINATES:
            raise bad_request(f"coordinates is longer than {MAX_COORDINATES} characters",
                              parameter="coordinates")
        try:
            coordinates = json.loads(coordinates)
        except ValueError:
            raise bad_request(f"coordinates {coordinates[:60]!r} is not a JSON array such as "
                              "[135.5,34.7]", parameter="coordinates") from None
    geom = parse_geometry(geometry, coordinates)
    prop = geoproperty or "location"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prop):
        raise bad_request(f"geoproperty {prop!r} is not an attribute name", parameter="geoproperty")
    origin = geom.centroid
    return GeoQuery(name, geom, prop, max_d, min_d, (origin.x, origin.y))


def _point_of(entity: dict[str, Any], prop: str) -> tuple[float, float] | None:
    attr = entity.get(prop)
    if isinstance(attr, dict) and attr.get("type") == "GeoProperty":
        value = attr.get("value")
        if isinstance(value, dict) and value.get("type") == "Point":
            c = value.get("coordinates")
            if isinstance(c, list) and len(c) >= 2 and all(isinstance(x, (int, float)) for x in c[:2]):
                return float(c[0]), float(c[1])
    return None


def entity_geometry(entity: dict[str, Any], prop: str) -> BaseGeometry | None:
    """The shapely geometry of an entity's GeoProperty, cached on the entity dict's side table."""
    attr = entity.get(prop)
    if isinstance(attr, list):
        attr = next((a for a in attr if isinstance(a, dict) and "datasetId" not in a), None)
    if not isinstance(attr, dict) or attr.get("type") != "GeoProperty":
        return None
    value = attr.get("value")
    cache = _SHAPES.get(id(value))
    if cache is not None and cache[0] is value:
        return cache[1]
    try:
        geom = shape(value)
    except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.GEOSException):
        return None
    if len(_SHAPES) > 200_000:
        _SHAPES.clear()
    _SHAPES[id(value)] = (value, geom)
    return geom


_SHAPES: dict[int, tuple[Any, BaseGeometry]] = {}
