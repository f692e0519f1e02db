"""Procedural street scenes for the synthetic stereo world: layout and ray intersections.

World frame (ROS convention): x forward along the street, y to the left, z up; the ground is
the plane z = 0. Every object is an analytic primitive (axis-aligned box, vertical cylinder or
sphere) with a Cityscapes trainId and a material, so rays can be intersected exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Cityscapes trainIds (19 classes, 255 = void)
ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, TRAFFIC_LIGHT, TRAFFIC_SIGN = 0, 1, 2, 3, 4, 5, 6, 7
VEGETATION, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS = 8, 9, 10, 11, 12, 13, 14, 15
VOID = 255

# Materials select the texture function (synthetic/texture.py).
(MAT_GROUND, MAT_BUILDING, MAT_VEGETATION, MAT_CAR, MAT_GLASS, MAT_PERSON, MAT_SKIN, MAT_METAL,
 MAT_SIGN, MAT_WALL) = range(10)

BOX, CYLINDER, SPHERE = 0, 1, 2


@dataclass
class Primitive:
    """One analytic object.

    ``params``: box (xmin, ymin, zmin, xmax, ymax, zmax); vertical cylinder (cx, cy, r, z0, z1);
    sphere (cx, cy, cz, r). Metres, world frame.
    """

    kind: int
    params: np.ndarray
    label: int
    material: int
    color: np.ndarray

    @property
    def aabb(self) -> np.ndarray:
        """Axis-aligned bounds (xmin, ymin, zmin, xmax, ymax, zmax)."""
        p = self.params
        if self.kind == BOX:
            return p
        if self.kind == CYLINDER:
            return np.array([p[0] - p[2], p[1] - p[2], p[3], p[0] + p[2], p[1] + p[2], p[4]])
        return np.array([p[0] - p[3], p[1] - p[3], p[2] - p[3], p[0] + p[3], p[1] + p[3],
                         p[2] + p[3]])


@dataclass
class Scene:
    """A street: ground bands (road |y| <= road_half, then sidewalks, then terrain) + objects."""

    road_half: float
    sidewalk_width: float
    lane_width: float
    n_lanes: int
    parking: float
    camera_y: float
    texture_seed: int
    objects: list[Primitive] = field(default_factory=list)
    _arrays: dict | None = field(default=None, repr=False)

    def arrays(self) -> dict[str, np.ndarray]:
        """Per-object arrays (AABB corners, labels, materials, colours), built once."""
        if self._arrays is None:
            aabbs = np.array([o.aabb for o in self.objects]).reshape(-1, 6)
            idx = [(i, j, k) for i in (0, 3) for j in (1, 4) for k in (2, 5)]
            params = np.zeros((len(self.objects), 6))
            for k, o in enumerate(self.objects):
                params[k, :len(o.params)] = o.params
            self._arrays = {
                "corners": np.stack([aabbs[:, list(c)] for c in idx], axis=1),  # N x 8 x 3
                "kinds": np.array([o.kind for o in self.objects], dtype=np.int64),
                "params": params,
                "params32": params.astype(np.float32),
                "labels": np.array([o.label for o in self.objects], dtype=np.uint8),
                "materials": np.array([o.material for o in self.objects], dtype=np.int64),
                "colors": np.array([o.color for o in self.objects]).reshape(-1, 3),
            }
        return self._arrays

    def ground_label(self, y: np.ndarray) -> np.ndarray:
        """Cityscapes trainId of ground points at lateral position ``y`` (metres)."""
        ay = np.abs(y)
        out = np.full(y.shape, TERRAIN, dtype=np.uint8)
        out[ay <= self.road_half + self.sidewalk_width] = SIDEWALK
        out[ay <= self.road_half] = ROAD
        return out


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def _box(x0, y0, z0, x1, y1, z1, label, material, color) -> Primitive:
    lo = np.minimum([x0, y0, z0], [x1, y1, z1])
    hi = np.maximum([x0, y0, z0], [x1, y1, z1])
    return Primitive(BOX, np.concatenate([lo, hi]).astype(np.float64), label, material,
                     np.asarray(color, dtype=np.float64))


def _cyl(cx, cy, r, z0, z1, label, material, color) -> Primitive:
    return Primitive(CYLINDER, np.array([cx, cy, r, z0, z1], dtype=np.float64), label, material,
                     np.asarray(color, dtype=np.float64))


def _sphere(cx, cy, cz, r, label, material, color) -> Primitive:
    return Primitive(SPHERE, np.array([cx, cy, cz, r], dtype=np.float64), label, material,
                     np.asarray(color, dtype=np.float64))


def _rand_color(rng: np.random.Generator, lo: float = 0.15, hi: float = 0.85) -> np.ndarray:
    return rng.uniform(lo, hi, size=3)


def _add_vehicle(objs: list, rng: np.random.Generator, x: float, y: float) -> None:
    """Add a car (body + glass cabin), or sometimes a truck/bus (one tall box)."""
    kind = rng.choice(3, p=[0.8, 0.12, 0.08])
    color = _rand_color(rng, 0.08, 0.9)
    if kind == 0:
        length, width = rng.uniform(3.8, 4.8), rng.uniform(1.65, 1.9)
        objs.append(_box(x, y - width / 2, 0.25, x + length, y + width / 2, 0.95, CAR, MAT_CAR,
                         color))
        cab = rng.uniform(0.45, 0.6) * length
        cx0 = x + rng.uniform(0.2, 0.3) * length
        objs.append(_box(cx0, y - width / 2 + 0.08, 0.95, cx0 + cab, y + width / 2 - 0.08,
                         rng.uniform(1.35, 1.55), CAR, MAT_GLASS, color * 0.5))
    else:
        label = TRUCK if kind == 1 else BUS
        length, width = rng.uniform(6.0, 11.0), rng.uniform(2.3, 2.55)
        objs.append(_box(x, y - width / 2, 0.3, x + length, y + width / 2, rng.uniform(2.8, 3.6),
                         label, MAT_CAR, color))


def _add_person(objs: list, rng: np.random.Generator, x: float, y: float) -> None:
    height = rng.uniform(1.55, 1.9)
    shirt, pants = _rand_color(rng), _rand_color(rng, 0.05, 0.5)
    r = rng.uniform(0.18, 0.25)
    objs.append(_cyl(x, y, r, 0.0, 0.85 * height / 1.75, PERSON, MAT_PERSON, pants))
    objs.append(_cyl(x, y, r * 1.05, 0.85 * height / 1.75, height - 0.22, PERSON, MAT_PERSON,
                     shirt))
    objs.append(_sphere(x, y, height - 0.11, 0.11, PERSON, MAT_SKIN,
                        np.array([0.85, 0.65, 0.5]) * rng.uniform(0.6, 1.1)))


def _add_pole(objs: list, rng: np.random.Generator, x: float, y: float) -> None:
    """Add a lamp/sign pole, with a traffic sign or a traffic light on some of them."""
    height = rng.uniform(4.0, 7.0)
    objs.append(_cyl(x, y, rng.uniform(0.06, 0.12), 0.0, height, POLE, MAT_METAL,
                     np.full(3, rng.uniform(0.3, 0.6))))
    extra = rng.uniform()
    side = -np.sign(y)  # mount towards the road
    if extra < 0.45:
        z = rng.uniform(2.0, 3.0)
        w = rng.uniform(0.5, 0.8)
        color = [np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.25, 0.75]),
                 np.array([0.9, 0.8, 0.1])][rng.integers(3)]
        objs.append(_box(x - 0.04, y + side * 0.1, z, x + 0.04, y + side * (0.1 + w), z + w,
                         TRAFFIC_SIGN, MAT_SIGN, color))
    elif extra < 0.75:
        z = rng.uniform(2.8, 4.0)
        objs.append(_box(x - 0.2, y + side * 0.1, z, x + 0.2, y + side * 0.45, z + 0.95,
                         TRAFFIC_LIGHT, MAT_SIGN, np.array([0.15, 0.15, 0.12])))


def _add_tree(objs: list, rng: np.random.Generator, x: float, y: float) -> None:
    trunk_h = rng.uniform(1.8, 3.2)
    objs.append(_cyl(x, y, rng.uniform(0.12, 0.25), 0.0, trunk_h + 0.5, VEGETATION, MAT_WALL,
                     np.array([0.35, 0.25, 0.15])))
    r = rng.uniform(1.3, 2.6)
    objs.append(_sphere(x, y, trunk_h + r * 0.8, r, VEGETATION, MAT_VEGETATION,
                        np.array([0.2, 0.45, 0.15]) * rng.uniform(0.6, 1.2)))


def _add_street_side(objs: list, rng: np.random.Generator, sign: float, edge: float,
                     x_lo: float, x_hi: float) -> None:
    """Add buildings (gaps: hedges, walls or fences) along one side; ``edge`` = |y| of curb."""
    x = x_lo
    while x < x_hi:
        length = rng.uniform(7.0, 25.0)
        setback = rng.uniform(0.0, 4.0)
        y0 = sign * (edge + setback)
        y1 = sign * (edge + setback + rng.uniform(8.0, 15.0))
        choice = rng.uniform()
        if choice < 0.7:
            objs.append(_box(x, y0, 0.0, x + length, y1, rng.uniform(5.0, 24.0), BUILDING,
                             MAT_BUILDING, _rand_color(rng, 0.3, 0.85)))
        elif choice < 0.85:
            objs.append(_box(x, y0, 0.0, x + length, y0 + sign * 1.5, rng.uniform(1.0, 2.5),
                             VEGETATION, MAT_VEGETATION, np.array([0.15, 0.4, 0.12])))
        else:
            label = WALL if rng.uniform() < 0.5 else FENCE
            objs.append(_box(x, y0, 0.0, x + length, y0 + sign * 0.25, rng.uniform(1.0, 2.2),
                             label, MAT_WALL, _rand_color(rng, 0.35, 0.75)))
        x += length + rng.uniform(0.0, 6.0)


def lane_centres(scene: Scene) -> np.ndarray:
    """Lateral positions (metres) of the driving lanes' centres."""
    half_lanes = scene.lane_width * scene.n_lanes / 2
    return -half_lanes + scene.lane_width * (np.arange(scene.n_lanes) + 0.5)


def generate_scene(rng: np.random.Generator, x_start: float, x_end: float) -> Scene:
    """Generate a random street for camera positions x in [x_start, x_end] (metres).

    The camera drives in one lane (``scene.camera_y``); no vehicle is placed in that lane
    between x_start and x_end + 7 m, so a driving camera never enters an object.
    """
    lane = rng.uniform(3.0, 3.7)
    n_lanes = int(rng.choice([2, 3, 4]))
    parking = 2.2 if rng.uniform() < 0.7 else 0.0
    scene = Scene(road_half=lane * n_lanes / 2 + parking, sidewalk_width=rng.uniform(2.0, 4.0),
                  lane_width=lane, n_lanes=n_lanes, parking=parking, camera_y=0.0,
                  texture_seed=int(rng.integers(2**31)))
    lanes = lane_centres(scene)
    scene.camera_y = float(lanes[rng.integers(n_lanes)] + rng.uniform(-0.3, 0.3))
    objs = scene.objects
    lo, hi = x_start - 15.0, x_end + 110.0
    curb = scene.road_half + scene.sidewalk_width
    for sign in (1.0, -1.0):
        _add_street_side(objs, rng, sign, curb, lo, hi)
        x = lo + rng.uniform(0, 10)
        while x < hi:  # poles and trees along the curb
            y = sign * (scene.road_half + rng.uniform(0.4, 0.9))
            (_add_pole if rng.uniform() < 0.6 else _add_tree)(objs, rng, x, y)
            x += rng.uniform(6.0, 16.0)
        x = lo + rng.uniform(0, 8)
        while x < hi:  # pedestrians on the sidewalk
            y = sign * (scene.road_half + rng.uniform(1.2, scene.sidewalk_width - 0.3))
            _add_person(objs, rng, x, y)
            x += rng.uniform(5.0, 22.0)
        x = lo + rng.uniform(0, 10)
        while parking and x < hi:  # parked cars in the parking strip
            if rng.uniform() < 0.6:
                _add_vehicle(objs, rng, x, sign * (scene.road_half - parking / 2))
            x += rng.uniform(6.0, 14.0)
    # traffic in the lanes ahead, out of the camera's own path
    for _ in range(int(rng.integers(2, 7))):
        y = float(lanes[rng.integers(n_lanes)])
        x = rng.uniform(x_start - 10.0, x_end + 60.0)
        if abs(y - scene.camera_y) < lane * 0.8 and x < x_end + 7.0:
            x = x_end + rng.uniform(7.0, 40.0)
        _add_vehicle(objs, rng, x, y)
    _add_backdrop(objs, rng, lo, hi, x_end + rng.uniform(90.0, 130.0))
    return scene


def _add_backdrop(objs: list, rng: np.random.Generator, lo: float, hi: float,
                  x_far: float) -> None:
    """Close the world: tree lines and buildings 60-70 m to each side and at the street's end.

    Every ray below the skyline then hits something within ~150 m.
    """
    def block(x0, y0, x1, y1):
        if rng.uniform() < 0.5:
            objs.append(_box(x0, y0, 0.0, x1, y1, rng.uniform(6.0, 16.0), VEGETATION,
                             MAT_VEGETATION, np.array([0.18, 0.38, 0.14]) * rng.uniform(0.7, 1.2)))
        else:
            objs.append(_box(x0, y0, 0.0, x1, y1, rng.uniform(8.0, 30.0), BUILDING, MAT_BUILDING,
                             _rand_color(rng, 0.3, 0.8)))

    for y in np.arange(-70.0, 70.0, 15.0):
        block(x_far, y, x_far + 10.0, y + 15.0)
    for sign in (1.0, -1.0):
        for x in np.arange(lo - 20.0, x_far, 20.0):
            y0 = sign * rng.uniform(60.0, 65.0)
            block(x, y0, x + 20.0, y0 + sign * 8.0)


# ---------------------------------------------------------------------------------------------
# Ray intersections: origin o (3,), directions d (N, 3) -> ray parameter t (N,), inf = miss.
# Normals are recovered afterwards from the hit point (``surface_normals``), which keeps the
# per-object inner loop of the renderer short.
# ---------------------------------------------------------------------------------------------


def intersect_box(o: np.ndarray, d: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Ray/box test over the (at most three) faces that face the origin (origin outside)."""
    t_best = np.full(len(d), np.inf, dtype=d.dtype)
    lo, hi = params[:3], params[3:]
    for axis in range(3):
        if o[axis] < lo[axis]:
            plane = lo[axis]
        elif o[axis] > hi[axis]:
            plane = hi[axis]
        else:
            continue  # neither face of this axis is visible
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (plane - o[axis]) / d[:, axis]
        a1, a2 = (axis + 1) % 3, (axis + 2) % 3
        c1 = o[a1] + t * d[:, a1]
        c2 = o[a2] + t * d[:, a2]
        hit = (t > 1e-6) & (c1 >= lo[a1]) & (c1 <= hi[a1]) & (c2 >= lo[a2]) & (c2 <= hi[a2])
        np.minimum(t_best, np.where(hit, t, np.inf), out=t_best)
    return t_best


def intersect_cylinder(o: np.ndarray, d: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Vertical cylinder with a top cap (the bottom stands on the ground)."""
    cx, cy, r, z0, z1 = params[:5]
    ox, oy = o[0] - cx, o[1] - cy
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2.0 * (d[:, 0] * ox + d[:, 1] * oy)
    c = ox * ox + oy * oy - r * r
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
        z = o[2] + t * d[:, 2]
        t = np.where((disc >= 0) & (t > 1e-6) & (z >= z0) & (z <= z1), t, np.inf)
        if o[2] > z1:  # the top cap is visible from above
            tc = (z1 - o[2]) / d[:, 2]
            px, py = ox + tc * d[:, 0], oy + tc * d[:, 1]
            cap = (tc > 1e-6) & (px * px + py * py <= r * r)
            np.minimum(t, np.where(cap, tc, np.inf), out=t)
    return t


def intersect_sphere(o: np.ndarray, d: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Sphere; the nearer intersection."""
    oc = o - params[:3]
    a = np.einsum("ij,ij->i", d, d)
    b = 2.0 * d @ oc
    c = oc @ oc - params[3] ** 2
    disc = b * b - 4 * a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
    return np.where((disc >= 0) & (t > 1e-6), t, np.inf)


INTERSECT = {BOX: intersect_box, CYLINDER: intersect_cylinder, SPHERE: intersect_sphere}


def surface_normals(points: np.ndarray, obj: np.ndarray, scene: Scene) -> np.ndarray:
    """Outward unit normals (N, 3) at hit points on objects ``obj`` (indices, all >= 0)."""
    arr = scene.arrays()
    kinds, params = arr["kinds"][obj], arr["params32"][obj]
    normals = np.zeros_like(points)
    box = kinds == BOX
    if box.any():  # the face whose plane is nearest to the point
        p, prm = points[box], params[box]
        d_lo, d_hi = np.abs(p - prm[:, :3]), np.abs(p - prm[:, 3:6])
        axis = np.minimum(d_lo, d_hi).argmin(axis=1)
        rows = np.arange(len(p))
        nb = np.zeros_like(p)
        nb[rows, axis] = np.where(d_lo[rows, axis] < d_hi[rows, axis], -1.0, 1.0)
        normals[box] = nb
    cyl = kinds == CYLINDER
    if cyl.any():
        p, prm = points[cyl], params[cyl]
        nc = np.zeros_like(p)
        nc[:, 0] = (p[:, 0] - prm[:, 0]) / prm[:, 2]
        nc[:, 1] = (p[:, 1] - prm[:, 1]) / prm[:, 2]
        nc[p[:, 2] >= prm[:, 4] - 1e-3] = (0.0, 0.0, 1.0)  # top cap
        normals[cyl] = nc
    sph = kinds == SPHERE
    if sph.any():
        p, prm = points[sph], params[sph]
        normals[sph] = (p - prm[:, :3]) / prm[:, 3:4]
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
