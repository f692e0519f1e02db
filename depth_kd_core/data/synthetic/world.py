"""Synthetic stereo world: a ray-cast driving scene seen by a calibrated stereo rig.

Exact ground truth for tests, the demo and the distillation benchmark. The rig is KITTI-like
(fx = 0.58 W, square pixels, baseline 0.54 m, camera 1.65 m above the road); scenes hold a
road with lane markings, sidewalks, terrain, building façades, trees and hedges, walls,
parked and moving vehicles, pedestrians, thin poles with signs and traffic lights, and sky at
infinity. Intersections are analytic (see ``scene.py``), textures are functions of the
world-space hit point (see ``texture.py``), so left, right and next-frame views are
photo-consistent.

    world = SyntheticWorld(seed=0, height=96, width=320)
    frame = world.sample(7)          # one stereo frame (scene 7 of this seed)
    clip = world.sequence(7, 3)      # three frames of a forward-driving camera in scene 7

Frame dict (H x W arrays): ``left``/``right`` uint8 RGB; ``depth``/``depth_right`` float32
metres (0 = sky); ``disparity`` float32 pixels (0 = sky); ``semantics`` uint8 Cityscapes
trainIds; ``lidar_depth`` float32 metres, sparse scan lines (0 = no return); ``K`` 3x3 float64;
``baseline`` metres; ``T_world_cam`` 4x4 float64 (left camera to world; camera axes x right,
y down, z forward; world x forward, y left, z up).
"""

from __future__ import annotations

import numpy as np

from depth_kd_core.data.synthetic import scene as sc
from depth_kd_core.data.synthetic.texture import shade_surfaces, sky_color

KITTI_BASELINE_M = 0.54  # stereo baseline of the KITTI rig (raw calibration, ~0.537 m)
KITTI_CAMERA_HEIGHT_M = 1.65  # KITTI camera height above the road
KITTI_FX_RATIO = 0.58  # fx / image width of KITTI (Monodepth2's normalised intrinsics)
HDL64_ELEVATIONS_DEG = (2.0, -24.8)  # Velodyne HDL-64E vertical field of view
LIDAR_MAX_RANGE_M = 120.0
MAX_SEQUENCE_LENGTH = 20  # frames; the scene is kept clear for this much driving
_MAX_STEP_M = 1.3  # forward motion per frame (about 45 km/h at 10 Hz)

# Level camera: camera x (right) = world -y, camera y (down) = world -z, camera z = world x.
R_WORLD_CAM_LEVEL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def camera_pose(x: float, y: float, height: float, yaw: float, pitch: float,
                roll: float) -> np.ndarray:
    """4x4 T_world_cam of a camera at (x, y, height) with yaw/pitch/roll in radians.

    Positive pitch tilts the optical axis down, positive yaw turns it left.
    """
    T = np.eye(4)
    T[:3, :3] = _rot_z(yaw) @ _rot_y(pitch) @ _rot_x(roll) @ R_WORLD_CAM_LEVEL
    T[:3, 3] = (x, y, height)
    return T


class SyntheticWorld:
    """Procedural stereo driving world with exact ground truth.

    Args:
        seed: selects the family of scenes; different seeds give different layouts.
        height, width: image size in pixels.
        baseline: stereo baseline, metres (right camera is +baseline along camera x).
        fx_ratio: fx / width; fy = fx (square pixels); principal point at the centre.
        camera_height: metres above the road.
        lidar_density: fraction of pixels with a LiDAR return (KITTI raw: about 0.05).
        noise_std: Gaussian pixel noise (in 0-255 units) added to the images; 0 = none.
        max_yaw_deg, max_pitch_deg: spread of the random camera orientation per scene.
    """

    def __init__(self, seed: int = 0, height: int = 96, width: int = 320, *,
                 baseline: float = KITTI_BASELINE_M, fx_ratio: float = KITTI_FX_RATIO,
                 camera_height: float = KITTI_CAMERA_HEIGHT_M, lidar_density: float = 0.05,
                 noise_std: float = 0.0, max_yaw_deg: float = 4.0,
                 max_pitch_deg: float = 1.5) -> None:
        if height < 8 or width < 8:
            raise ValueError(f"SyntheticWorld: image size {height}x{width} is too small (>= 8)")
        if baseline <= 0:
            raise ValueError(f"SyntheticWorld: baseline must be > 0 m, got {baseline}")
        self.seed = int(seed)
        self.height, self.width = int(height), int(width)
        self.baseline = float(baseline)
        self.camera_height = float(camera_height)
        self.lidar_density = float(lidar_density)
        self.noise_std = float(noise_std)
        self.max_yaw = np.deg2rad(max_yaw_deg)
        self.max_pitch = np.deg2rad(max_pitch_deg)
        fx = fx_ratio * width
        self.K = np.array([[fx, 0.0, (width - 1) / 2.0], [0.0, fx, (height - 1) / 2.0],
                           [0.0, 0.0, 1.0]])
        v, u = np.mgrid[0:self.height, 0:self.width].astype(np.float64)
        self._rays_cam = np.stack([(u - self.K[0, 2]) / fx, (v - self.K[1, 2]) / fx,
                                   np.ones_like(u)], axis=-1)  # z = 1: ray parameter = depth
        self._scene_cache: tuple[int, sc.Scene] | None = None

    @property
    def focal(self) -> float:
        """Focal length fx in pixels."""
        return float(self.K[0, 0])

    # ------------------------------------------------------------------ public API

    def sample(self, i: int) -> dict:
        """Stereo frame of scene ``i`` (the first frame of ``sequence(i)``)."""
        return self.sequence(i, length=1)[0]

    def sequence(self, i: int, length: int = 3, *, stereo: bool = True) -> list[dict]:
        """``length`` consecutive frames of a forward-driving camera in scene ``i``.

        Each frame holds the fields of :meth:`sample` plus ``T_world_cam``. Frame k of a
        sequence does not depend on ``length``. ``stereo=False`` skips the right view
        (``right``, ``depth_right`` and ``disparity`` are then absent), halving the cost for
        monocular video use.
        """
        if not 1 <= length <= MAX_SEQUENCE_LENGTH:
            raise ValueError(f"sequence length must be in [1, {MAX_SEQUENCE_LENGTH}], "
                             f"got {length}")
        return [self.frame(i, k, stereo=stereo) for k in range(length)]

    def frame(self, i: int, k: int, *, stereo: bool = True) -> dict:
        """Frame ``k`` of scene ``i``'s driving sequence (see :meth:`sequence`)."""
        if not 0 <= k < MAX_SEQUENCE_LENGTH:
            raise ValueError(f"frame index must be in [0, {MAX_SEQUENCE_LENGTH}), got {k}")
        scene = self.scene(i)
        T_world_cam = self._trajectory(i, scene, k + 1)[k]
        return self._render_frame(scene, T_world_cam, i, k, stereo)

    def scene(self, i: int) -> sc.Scene:
        """Return the (deterministic) layout of scene ``i``."""
        if self._scene_cache is None or self._scene_cache[0] != i:
            rng = np.random.default_rng([self.seed, int(i), 0])
            self._scene_cache = (i, sc.generate_scene(rng, 0.0, MAX_SEQUENCE_LENGTH * _MAX_STEP_M))
        return self._scene_cache[1]

    # ------------------------------------------------------------------ internals

    def _trajectory(self, i: int, scene: sc.Scene, length: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, int(i), 1])
        step = rng.uniform(0.5, _MAX_STEP_M)
        yaw0 = rng.uniform(-self.max_yaw, self.max_yaw)
        yaw_rate = rng.uniform(-0.01, 0.01)  # rad per frame
        pitch0 = rng.uniform(-self.max_pitch, self.max_pitch)
        roll0 = rng.uniform(-0.006, 0.006)
        draws = rng.normal(size=(MAX_SEQUENCE_LENGTH, 3))
        poses, x, y = [], 0.0, scene.camera_y
        for k in range(length):
            yaw = yaw0 + yaw_rate * k
            pitch = pitch0 + 0.002 * draws[k, 0]
            height = self.camera_height + 0.01 * draws[k, 1]
            poses.append(camera_pose(x, y, height, yaw, pitch, roll0 + 0.001 * draws[k, 2]))
            x += step * np.cos(yaw)
            y += step * np.sin(yaw)
        return poses

    def _render_frame(self, scene: sc.Scene, T_world_cam: np.ndarray, i: int, k: int,
                      stereo: bool = True) -> dict:
        rng = np.random.default_rng([self.seed, int(i), 2, k])
        left, depth, labels = self.render(scene, T_world_cam)
        if self.noise_std > 0:
            left = _add_noise(left, self.noise_std, rng)
        frame = {
            "left": left,
            "depth": depth,
            "semantics": labels,
            "lidar_depth": lidar_scan(depth, self.K, self.lidar_density, rng),
            "K": self.K.copy(),
            "baseline": self.baseline,
            "T_world_cam": T_world_cam,
        }
        if stereo:
            T_right = T_world_cam.copy()
            T_right[:3, 3] += T_world_cam[:3, :3] @ np.array([self.baseline, 0.0, 0.0])
            right, depth_right, _ = self.render(scene, T_right)
            if self.noise_std > 0:
                right = _add_noise(right, self.noise_std, rng)
            disparity = np.where(depth > 0, self.focal * self.baseline / np.maximum(depth, 1e-6),
                                 0.0)
            frame.update(right=right, depth_right=depth_right,
                         disparity=disparity.astype(np.float32))
        return frame

    def render(self, scene: sc.Scene, T_world_cam: np.ndarray):
        """Ray-cast one view. Returns (rgb uint8 HxWx3, depth float32 metres, trainIds uint8)."""
        H, W = self.height, self.width
        R, origin = T_world_cam[:3, :3], T_world_cam[:3, 3]
        origin32 = origin.astype(np.float32)
        dirs = (self._rays_cam @ R.T).astype(np.float32)  # world frame, camera-z component = 1
        zbuf = np.full((H, W), np.inf, dtype=np.float32)
        obj = np.full((H, W), -2, dtype=np.int64)  # -2 sky, -1 ground, >= 0 object index
        down = dirs[..., 2] < -1e-7
        zbuf[down] = -origin[2] / dirs[..., 2][down]
        obj[down] = -1
        params32 = scene.arrays()["params32"]
        for idx, (v0, v1, u0, u1, zmin) in self._visible_objects(scene, R, origin):
            window = zbuf[v0:v1, u0:u1]
            if zmin > window.max():
                continue  # entirely behind what is already drawn there
            t = sc.INTERSECT[scene.objects[idx].kind](
                origin32, dirs[v0:v1, u0:u1].reshape(-1, 3), params32[idx]
            ).reshape(v1 - v0, u1 - u0)
            closer = t < window
            window[closer] = t[closer]
            obj[v0:v1, u0:u1][closer] = idx
        return self._shade(scene, origin, dirs, zbuf, obj)

    def _shade(self, scene, origin, dirs, zbuf, obj):
        """Colour, depth and labels from the resolved depth buffer."""
        H, W = self.height, self.width
        hit = obj > -2
        d_hit, z_hit, obj_hit = dirs[hit], zbuf[hit], obj[hit]
        points = origin.astype(np.float32) + z_hit[:, None] * d_hit
        n_hit = np.zeros(points.shape, dtype=np.float32)
        n_hit[obj_hit == -1, 2] = 1.0
        on_obj = obj_hit >= 0
        n_hit[on_obj] = sc.surface_normals(points[on_obj], obj_hit[on_obj], scene)
        ray_len = np.linalg.norm(d_hit, axis=1)
        cos = np.clip(np.abs(np.einsum("ij,ij->i", n_hit, d_hit)) / ray_len, 0.2, 1.0)
        footprint = z_hit * ray_len / (self.focal * cos)
        rgb = np.empty((H, W, 3), dtype=np.float32)
        rgb[hit] = shade_surfaces(points, n_hit, obj_hit, footprint, scene)
        rgb[~hit] = sky_color(dirs[~hit], scene.texture_seed)
        labels = np.full((H, W), sc.SKY, dtype=np.uint8)
        ground = obj == -1
        labels[ground] = scene.ground_label(points[obj_hit == -1][:, 1])
        labels[hit] = np.where(on_obj, scene.arrays()["labels"][np.maximum(obj_hit, 0)],
                               labels[hit])
        depth = np.where(hit, zbuf, 0.0).astype(np.float32)
        return np.round(rgb * 255.0).astype(np.uint8), depth, labels

    def _visible_objects(self, scene: sc.Scene, R: np.ndarray, origin: np.ndarray):
        """(index, (v0, v1, u0, u1, nearest depth)) of objects that may be seen, near first.

        The pixel rectangle bounds the projection of each object's bounding box; an object
        straddling the image plane gets the whole image.
        """
        corners = scene.arrays()["corners"]
        if len(corners) == 0:
            return []
        cam = (corners - origin) @ R  # N x 8 x 3, rows R^T (p - o)
        z = cam[..., 2]
        in_front = (z >= 0.05).all(axis=1)
        zs = np.where(z >= 0.05, z, np.inf)
        u = self.K[0, 0] * cam[..., 0] / np.maximum(z, 0.05) + self.K[0, 2]
        v = self.K[1, 1] * cam[..., 1] / np.maximum(z, 0.05) + self.K[1, 2]
        H, W = self.height, self.width
        u0 = np.where(in_front, np.floor(u.min(1)) - 1, 0).clip(0, W).astype(int)
        u1 = np.where(in_front, np.ceil(u.max(1)) + 2, W).clip(0, W).astype(int)
        v0 = np.where(in_front, np.floor(v.min(1)) - 1, 0).clip(0, H).astype(int)
        v1 = np.where(in_front, np.ceil(v.max(1)) + 2, H).clip(0, H).astype(int)
        zmin = np.where(in_front, zs.min(1), 0.0)
        seen = (z >= 0.05).any(axis=1) & (u0 < u1) & (v0 < v1)
        order = np.nonzero(seen)[0]
        order = order[np.argsort(zmin[order], kind="stable")]
        return [(int(i), (v0[i], v1[i], u0[i], u1[i], zmin[i])) for i in order]


def _add_noise(img: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    noisy = img.astype(np.float32) + rng.normal(0.0, std, img.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def lidar_scan(depth: np.ndarray, K: np.ndarray, density: float,
               rng: np.random.Generator) -> np.ndarray:
    """Sparse LiDAR-like samples of ``depth`` along HDL-64E scan lines.

    Beams are spread evenly over the HDL-64E vertical field of view; those inside the image
    are sampled at an azimuth step chosen so that about ``density`` of all pixels get a
    return. Returns H x W float32 metres, 0 = no return (sky, beyond range, dropout).
    """
    H, W = depth.shape
    out = np.zeros_like(depth, dtype=np.float32)
    if density <= 0:
        return out
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    beams = np.deg2rad(np.linspace(*HDL64_ELEVATIONS_DEG, 64))
    top, bottom = np.arctan(cy / fy), -np.arctan((H - 1 - cy) / fy)
    beams = beams[(beams < top) & (beams > bottom)]
    if beams.size == 0:
        return out
    az_max = np.arctan((W / 2) / fx)
    per_beam = max(int(round(density * H * W / beams.size)), 1)
    az = np.linspace(-az_max, az_max, per_beam)
    az = az + rng.uniform(-0.5, 0.5, size=(beams.size, 1)) * (az[1] - az[0] if per_beam > 1 else 0)
    u = np.round(cx + fx * np.tan(az)).astype(np.int64)
    v = np.round(cy - fy * np.tan(beams)[:, None] / np.cos(az)).astype(np.int64)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    u, v = u[inside], v[inside]
    keep = rng.uniform(size=u.shape) > 0.05  # dropped returns
    u, v = u[keep], v[keep]
    d = depth[v, u]
    ok = (d > 0) & (d < LIDAR_MAX_RANGE_M)
    out[v[ok], u[ok]] = d[ok]
    return out
