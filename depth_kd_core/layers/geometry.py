"""Camera geometry for view synthesis: back-projection, projection, poses, stereo warps.

Pure functions on tensors. Conventions: pixel (u, v) with u along the width; K (B, 3, 3) in
pixels at the tensor's resolution; depth (B, 1, H, W) metres; T (B, 4, 4) maps points of the
target camera into the source camera.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MONODEPTH_MIN_DEPTH_M, MONODEPTH_MAX_DEPTH_M = 0.1, 100.0  # disp_to_depth range (METHODS §6)


def disp_to_depth(sigmoid_disp: torch.Tensor, min_depth: float = MONODEPTH_MIN_DEPTH_M,
                  max_depth: float = MONODEPTH_MAX_DEPTH_M) -> torch.Tensor:
    """Monodepth2's decoding of a sigmoid output into depth (metres up to scale)."""
    min_disp, max_disp = 1.0 / max_depth, 1.0 / min_depth
    return 1.0 / (min_disp + (max_disp - min_disp) * sigmoid_disp)


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(3, H*W) homogeneous pixel coordinates (u, v, 1)."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                          torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack([u.flatten(), v.flatten(), torch.ones_like(u).flatten()])


def backproject(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Back-project depth (B, 1, H, W) metres -> camera points (B, 4, H*W), homogeneous."""
    B, _, H, W = depth.shape
    rays = torch.linalg.inv(K) @ pixel_grid(H, W, depth.device, depth.dtype)  # B x 3 x HW
    points = rays * depth.flatten(2)
    return torch.cat([points, torch.ones_like(points[:, :1])], dim=1)


def project(points: torch.Tensor, K: torch.Tensor, T: torch.Tensor, height: int, width: int,
            eps: float = 1e-7) -> torch.Tensor:
    """Camera points (B, 4, N) -> grid_sample coordinates (B, H, W, 2) in [-1, 1].

    Points are moved by T (B, 4, 4) and projected with K; normalisation divides by (W - 1),
    i.e. align_corners=True semantics (Monodepth2).
    """
    cam = (T @ points)[:, :3]
    pix = K @ cam
    uv = pix[:, :2] / (pix[:, 2:3] + eps)
    uv = uv.view(-1, 2, height, width).permute(0, 2, 3, 1)
    scale = torch.tensor([width - 1, height - 1], device=uv.device, dtype=uv.dtype)
    return uv / scale * 2 - 1


def axis_angle_to_matrix(vec: torch.Tensor) -> torch.Tensor:
    """(B, 3) axis-angle -> (B, 3, 3) rotation (Rodrigues)."""
    angle = vec.norm(dim=1, keepdim=True).clamp_min(1e-7)
    axis = vec / angle
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    s, c = torch.sin(angle).view(-1, 1, 1), torch.cos(angle).view(-1, 1, 1)
    eye = torch.eye(3, device=vec.device, dtype=vec.dtype).expand_as(skew)
    return eye + s * skew + (1 - c) * (skew @ skew)


def _rigid_matrix(R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotation + (B, 3, 1) translation -> (B, 4, 4) [R | t]."""
    T = torch.eye(4, device=R.device, dtype=R.dtype).repeat(R.shape[0], 1, 1)
    T[:, :3, :3] = R
    T[:, :3, 3:] = t
    return T


def pose_to_matrix(axis_angle: torch.Tensor, translation: torch.Tensor,
                   invert: bool = False) -> torch.Tensor:
    """(B, 3) rotation + (B, 3) translation -> (B, 4, 4); ``invert`` gives the inverse."""
    T = _rigid_matrix(axis_angle_to_matrix(axis_angle), translation.unsqueeze(-1))
    return invert_rigid(T) if invert else T


def invert_rigid(T: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) rigid transforms [R | t] -> their inverses [R^T | -R^T t]."""
    R_inv = T[:, :3, :3].transpose(1, 2)
    return _rigid_matrix(R_inv, -R_inv @ T[:, :3, 3:])


def warp_horizontal(source: torch.Tensor, disp: torch.Tensor,
                    padding_mode: str = "border") -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``source`` at (x - disp, y): a left view from a right image and left disparity.

    source (B, C, H, W); disp (B, 1, H, W) pixels (positive). Returns the warped image and a
    (B, 1, H, W) mask of samples that fell inside the source image.
    """
    B, _, H, W = source.shape
    xs = torch.arange(W, device=disp.device, dtype=disp.dtype).view(1, 1, W) - disp[:, 0]
    ys = torch.arange(H, device=disp.device, dtype=disp.dtype).view(1, H, 1).expand(B, H, W)
    grid = torch.stack([xs / (W - 1) * 2 - 1, ys / (H - 1) * 2 - 1], dim=-1)
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode=padding_mode,
                           align_corners=True)
    inside = ((xs >= 0) & (xs <= W - 1)).unsqueeze(1).to(source.dtype)
    return warped, inside
