"""Procedural textures for the synthetic world: colour as a function of the world hit point.

Because albedo depends only on the 3-D surface point (never on the camera), the left, right
and next-frame views of a surface agree (photo-consistency), which is what stereo matching,
the photometric losses and our warping tests rely on. Each pattern is band-limited by the
pixel footprint (metres per pixel at the hit): detail smaller than about two pixels fades to
its mean, so distant surfaces do not alias into view-dependent noise.
"""

from __future__ import annotations

import numpy as np

from depth_kd_core.data.synthetic import scene as sc

SUN_DIR = np.array([0.45, 0.35, 0.82]) / np.linalg.norm([0.45, 0.35, 0.82])  # world, z up
AMBIENT, DIFFUSE = 0.45, 0.6

_TABLE_SIZE = 256  # lattice values repeat every 256 cells
_TABLE_STRIDE = _TABLE_SIZE + 1  # one extra row/column so corner +1 needs no wrap-around
_NOISE_TABLE = np.random.default_rng(20240917).uniform(
    -1.0, 1.0, (_TABLE_STRIDE, _TABLE_STRIDE)).astype(np.float32)
_NOISE_TABLE[_TABLE_SIZE, :] = _NOISE_TABLE[0, :]
_NOISE_TABLE[:, _TABLE_SIZE] = _NOISE_TABLE[:, 0]
_NOISE_TABLE = _NOISE_TABLE.ravel()


def value_noise(q: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth 2-D value noise in [-1, 1] with lattice spacing ``cell`` metres.

    q: (N, 2) surface coordinates (see :func:`surface_coords`). Lattice values come from a
    fixed random table; ``seed`` shifts the lattice so that octaves and scenes differ.
    """
    off_x, off_y = (int(v) for v in np.random.default_rng(seed & 0x7FFFFFFF).integers(
        0, _TABLE_SIZE, size=2))
    inv = np.float32(1.0 / cell)
    sx = q[:, 0].astype(np.float32) * inv
    sy = q[:, 1].astype(np.float32) * inv
    bx, by = np.floor(sx), np.floor(sy)
    fx, fy = sx - bx, sy - by
    fx = fx * fx * (3.0 - 2.0 * fx)
    fy = fy * fy * (3.0 - 2.0 * fy)
    ix = (bx.astype(np.int32) + off_x) & (_TABLE_SIZE - 1)
    iy = (by.astype(np.int32) + off_y) & (_TABLE_SIZE - 1)
    idx = iy * _TABLE_STRIDE + ix
    t = _NOISE_TABLE
    v00, v01 = t.take(idx), t.take(idx + 1)
    v10, v11 = t.take(idx + _TABLE_STRIDE), t.take(idx + _TABLE_STRIDE + 1)
    bottom = v00 + fx * (v01 - v00)
    top = v10 + fx * (v11 - v10)
    return bottom + fy * (top - bottom)


def surface_coords(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """2-D texture coordinates of surface points: drop the axis of the dominant normal.

    Depends only on the surface point and its normal, never on the camera.
    """
    axis = np.abs(n).argmax(axis=1)
    q = np.empty((len(p), 2), dtype=p.dtype)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    q[:, 0] = np.where(axis == 0, y, x)
    q[:, 1] = np.where(axis == 2, y, z)
    return q


def _fade(cell: float, footprint: np.ndarray) -> np.ndarray:
    """1 when a detail of size ``cell`` spans >= 4 pixels, 0 below 2 pixels."""
    return np.clip(cell / (2.0 * footprint) - 1.0, 0.0, 1.0)


def filtered_stripes(s: np.ndarray, period: float, lo: float, hi: float,
                     footprint: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of bands [lo, hi) * period repeating every ``period`` metres.

    A box-filtered square wave: edges are blurred over one footprint, and once the period
    shrinks below ~2 footprints the result fades to the mean coverage (hi - lo).
    """
    width = (hi - lo) * period
    centre = (lo + hi) / 2 * period
    local = np.mod(s - centre + period / 2, period) - period / 2
    sharp = np.clip((width / 2 - np.abs(local)) / footprint + 0.5, 0.0, 1.0)
    w = _fade(period, footprint)
    return w * sharp + (1.0 - w) * (hi - lo)


def _line(s: np.ndarray, centre: float, width: float, footprint: np.ndarray) -> np.ndarray:
    """Coverage of a single band of ``width`` metres around ``centre``."""
    cover = np.clip((width / 2 - np.abs(s - centre)) / footprint + 0.5, 0.0, 1.0)
    return cover * np.clip(width / footprint, 0.0, 1.0) ** 0.5


# Shared noise octaves (cell size, metres) and each texture class's amplitude per octave.
OCTAVE_CELLS = (2.0, 0.5, 0.15)
_GROUND_BAND = np.zeros(256, dtype=np.int64)  # trainId -> texture band (road, sidewalk, terrain)
_GROUND_BAND[[sc.ROAD, sc.SIDEWALK, sc.TERRAIN]] = (0, 1, 2)
_N_MATERIALS = 10
_AMPLITUDE = np.zeros((_N_MATERIALS + 3, len(OCTAVE_CELLS)), dtype=np.float32)
_AMPLITUDE[:] = (0.15, 0.15, 0.06)  # generic objects (cars, people, poles, walls)
_AMPLITUDE[sc.MAT_BUILDING] = (0.1, 0.12, 0.08)
_AMPLITUDE[sc.MAT_VEGETATION] = (0.3, 0.35, 0.3)
_AMPLITUDE[sc.MAT_GLASS] = (0.05, 0.3, 0.0)
_AMPLITUDE[sc.MAT_SIGN] = (0.0, 0.05, 0.05)
_AMPLITUDE[_N_MATERIALS + 0] = (0.12, 0.15, 0.12)  # road
_AMPLITUDE[_N_MATERIALS + 1] = (0.08, 0.12, 0.1)  # sidewalk
_AMPLITUDE[_N_MATERIALS + 2] = (0.15, 0.3, 0.25)  # terrain
_GROUND_COLORS = np.array([[0.33, 0.33, 0.35], [0.62, 0.6, 0.56], [0.33, 0.45, 0.2]],
                          dtype=np.float32)


def _ground_patterns(p, footprint, scene: sc.Scene, band: np.ndarray) -> np.ndarray:
    """Sidewalk tile joints and lane markings: (N,) shade multiplier and (N,) paint coverage."""
    y = p[:, 1]
    side = band == 1
    joints = np.maximum(filtered_stripes(p[:, 0], 0.6, 0.0, 0.06, footprint),
                        filtered_stripes(y, 0.6, 0.0, 0.06, footprint))
    shade = np.where(side, 1.0 - 0.35 * joints, 1.0)
    paint = np.zeros(len(p), dtype=np.float32)
    half_lanes = scene.lane_width * scene.n_lanes / 2
    dash = filtered_stripes(p[:, 0], 6.0, 0.0, 0.5, footprint)
    for k in range(1, scene.n_lanes):  # dashed lines between lanes
        yl = -half_lanes + k * scene.lane_width
        paint = np.maximum(paint, _line(y, yl, 0.15, footprint) * dash)
    paint = np.maximum(paint, _line(np.abs(y), half_lanes, 0.2, footprint))  # solid edges
    return shade, paint * (band == 0)


def _facade_coord(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Horizontal coordinate along a vertical face (x on faces normal to y, else y)."""
    return np.where(np.abs(n[:, 1]) > 0.5, p[:, 0], p[:, 1])


def _windows(p, n, q, footprint, seed) -> tuple[np.ndarray, np.ndarray]:
    """Window coverage (N,) on façades and the glass colour (N, 3) of each pane."""
    s = _facade_coord(p, n)
    windows = filtered_stripes(s, 2.6, 0.25, 0.75, footprint) * \
        filtered_stripes(p[:, 2] - 0.8, 3.2, 0.3, 0.78, footprint)
    windows *= (p[:, 2] > 1.0) & (np.abs(n[:, 2]) < 0.5)
    pane = value_noise(np.floor(q / 2.6) + 0.5, 1.0, seed + 5)  # one tint per window
    glass = np.array([0.18, 0.22, 0.3], dtype=np.float32) * (1.0 + 0.5 * pane)[:, None]
    return windows, glass


def shade_surfaces(points: np.ndarray, normals: np.ndarray, obj: np.ndarray,
                   footprint: np.ndarray, scene: sc.Scene) -> np.ndarray:
    """Lit RGB in [0, 1] for hit points.

    Args:
        points: (N, 3) world hit points, metres.
        normals: (N, 3) unit outward normals.
        obj: (N,) object index into ``scene.objects``, -1 for the ground.
        footprint: (N,) metres per pixel at each hit (texture band limit).
        scene: the scene (materials, colours, texture seed).
    """
    seed = scene.texture_seed
    arrays = scene.arrays()
    ground = obj < 0
    safe_obj = np.maximum(obj, 0)
    band = np.zeros(len(obj), dtype=np.int64)
    band[ground] = _GROUND_BAND[scene.ground_label(points[ground, 1])]
    material = np.where(ground, _N_MATERIALS + band, arrays["materials"][safe_obj])
    albedo = np.where(ground[:, None], _GROUND_COLORS[band],
                      arrays["colors"][safe_obj]).astype(np.float32)
    glass = material == sc.MAT_GLASS
    albedo[glass] = albedo[glass] * 0.6 + 0.25
    uv = surface_coords(points, normals)
    noise = np.zeros(len(points), dtype=np.float32)
    for k, cell in enumerate(OCTAVE_CELLS):
        weight = _AMPLITUDE[material, k] * _fade(cell, footprint)
        if np.any(weight > 0):
            noise += weight * value_noise(uv, cell, seed + 101 * k)
    albedo *= (1.0 + noise)[:, None]
    if ground.any():
        shade, paint = _ground_patterns(points[ground], footprint[ground], scene, band[ground])
        albedo[ground] = albedo[ground] * shade[:, None] * (1 - paint[:, None]) + \
            0.9 * paint[:, None]
    bld = material == sc.MAT_BUILDING
    if bld.any():
        windows, pane = _windows(points[bld], normals[bld], uv[bld], footprint[bld], seed + 11)
        albedo[bld] = albedo[bld] * (1 - windows[:, None]) + pane * windows[:, None]
    sign = material == sc.MAT_SIGN
    if sign.any():
        border = filtered_stripes(points[sign][:, 2], 0.35, 0.0, 0.12, footprint[sign])
        albedo[sign] *= (1.0 - 0.4 * border)[:, None]
    lambert = AMBIENT + DIFFUSE * np.clip(normals @ SUN_DIR.astype(np.float32), 0.0, 1.0)
    return np.clip(albedo * lambert[:, None], 0.0, 1.0)


def sky_color(directions: np.ndarray, seed: int) -> np.ndarray:
    """Sky RGB for world ray directions (N, 3): a gradient with soft clouds.

    Depends on the direction only (the sky is at infinity), so it is consistent across views
    that differ by a translation.
    """
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    elevation = np.clip(d[:, 2], 0.0, 1.0)
    horizon, zenith = np.array([0.78, 0.85, 0.92]), np.array([0.35, 0.55, 0.85])
    base = horizon + (zenith - horizon) * np.sqrt(elevation)[:, None]
    sky_uv = np.stack([np.arctan2(d[:, 1], d[:, 0]) * 8.0, elevation * 12.0], axis=1)
    cloud = np.clip(value_noise(sky_uv, 1.0, seed + 29) * 0.8 + 0.2, 0.0, 1.0)
    return base * (1 - 0.5 * cloud[:, None]) + 0.5 * cloud[:, None] * 0.95
