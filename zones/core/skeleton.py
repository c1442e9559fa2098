"""The 55 bones of a visitor's body, posed from its root's motion.

A visitor is 56 entities: a root that holds authority and migrates, and 55
humanoid bones that go wherever the root goes, in the same handoff. Bones hold
no authority of their own, so a body can never be split across zones. Their
pose follows from the root's state: the rest pose turned to face the walking
direction, with legs and arms swinging in a stride that advances with the
distance walked. Offsets travel as millimetres from the root (BODY_DTYPE).
"""

import numpy as np

from .wire import BODY_DTYPE, BONES_PER_BODY, ROW_DTYPE

# (name, parent index or -1 for the root, offset from the parent in metres; +z faces forward)
_HAND = [  # five fingers of three bones each, relative to the wrist
    (f"{finger}{joint}", side_x)
    for finger, side_x in (("thumb", 0.03), ("index", 0.02), ("middle", 0.0), ("ring", -0.02))
    + (("little", -0.04),)
    for joint in (1, 2, 3)
]


def _bones() -> list[tuple[str, int, tuple[float, float, float]]]:
    bones: list[tuple[str, int, tuple[float, float, float]]] = []

    def add(name: str, parent: int, offset: tuple[float, float, float]) -> int:
        bones.append((name, parent, offset))
        return len(bones) - 1

    spine = add("spine", -1, (0.0, 0.10, 0.0))
    chest = add("chest", spine, (0.0, 0.15, 0.0))
    upper_chest = add("upper_chest", chest, (0.0, 0.15, 0.0))
    neck = add("neck", upper_chest, (0.0, 0.12, 0.0))
    head = add("head", neck, (0.0, 0.10, 0.0))
    add("jaw", head, (0.0, -0.03, 0.08))
    add("eye_l", head, (0.03, 0.07, 0.09))
    add("eye_r", head, (-0.03, 0.07, 0.09))
    add("head_top", head, (0.0, 0.20, 0.0))
    for side, sx in (("l", 1.0), ("r", -1.0)):
        shoulder = add(f"shoulder_{side}", upper_chest, (sx * 0.08, 0.08, 0.0))
        upper_arm = add(f"upper_arm_{side}", shoulder, (sx * 0.12, 0.0, 0.0))
        forearm = add(f"forearm_{side}", upper_arm, (0.0, -0.28, 0.0))
        hand = add(f"hand_{side}", forearm, (0.0, -0.26, 0.0))
        for j, (name, fx) in enumerate(_HAND):
            parent = hand if j % 3 == 0 else len(bones) - 1
            add(f"{name}_{side}", parent, (sx * fx, -0.08 if j % 3 == 0 else -0.03, 0.0))
    for side, sx in (("l", 1.0), ("r", -1.0)):
        upper_leg = add(f"upper_leg_{side}", -1, (sx * 0.09, -0.05, 0.0))
        lower_leg = add(f"lower_leg_{side}", upper_leg, (0.0, -0.43, 0.0))
        foot = add(f"foot_{side}", lower_leg, (0.0, -0.42, 0.0))
        add(f"toes_{side}", foot, (0.0, -0.05, 0.14))
    return bones


BONES = _bones()
assert len(BONES) == BONES_PER_BODY, len(BONES)
BONE_NAMES = tuple(name for name, _, _ in BONES)


def _rest_pose() -> tuple[np.ndarray, np.ndarray]:
    """Each bone's offset from the root in the rest pose, and its swing weight."""
    rest = np.zeros((BONES_PER_BODY, 3))
    swing = np.zeros(BONES_PER_BODY)
    for i, (name, parent, offset) in enumerate(BONES):
        rest[i] = (rest[parent] if parent >= 0 else 0.0) + np.array(offset)
        # legs swing forward and back with the stride, each arm opposite to its leg;
        # the farther a bone is from its hip or shoulder, the larger its arc
        if "leg" in name or "foot" in name or "toes" in name:
            sign = 1.0 if name.endswith("_l") else -1.0
            swing[i] = sign * min(1.0, -rest[i][1] / 0.9) * 0.35
        elif any(part in name for part in ("forearm", "hand", *[n for n, _ in _HAND])):
            sign = -1.0 if name.endswith("_l") else 1.0
            swing[i] = sign * 0.25
    return rest, swing


REST_POSE, _SWING = _rest_pose()
STRIDE_M = 1.4  # one full gait cycle covers this distance


def body_offsets(rows: np.ndarray) -> np.ndarray:
    """(n, 55, 3) float32 bone offsets from each root, for ROW_DTYPE rows of visitor roots."""
    vel = rows["vel"].astype(np.float64)
    speed = np.hypot(vel[:, 0], vel[:, 2])
    heading = np.where(speed > 1e-3, np.arctan2(vel[:, 0], vel[:, 2]), 0.0)
    # The stride follows the distance walked along the heading, so the pose changes only
    # as the visitor moves; an offset by id keeps a crowd from marching in step.
    ids = rows["id"].astype(np.uint64)
    pos = rows["pos"].astype(np.float64)
    along = pos[:, 0] * np.sin(heading) + pos[:, 2] * np.cos(heading)
    phase = 2 * np.pi * (along / STRIDE_M + (ids % 97).astype(np.float64) / 97)
    amount = np.minimum(speed / 2.0, 1.0) * np.sin(phase)
    local = np.broadcast_to(REST_POSE, (rows.size, BONES_PER_BODY, 3)).copy()
    local[:, :, 2] += amount[:, None] * _SWING[None, :]
    cos, sin = np.cos(heading)[:, None], np.sin(heading)[:, None]
    x, z = local[:, :, 0].copy(), local[:, :, 2].copy()
    local[:, :, 0] = cos * x + sin * z
    local[:, :, 2] = -sin * x + cos * z
    return local.astype(np.float32)


def bodies(rows: np.ndarray) -> np.ndarray:
    """BODY_DTYPE blocks (offsets in mm) for ROW_DTYPE rows of visitor roots."""
    out = np.empty(rows.size, BODY_DTYPE)
    out["id"] = rows["id"]
    out["bones"] = np.rint(body_offsets(rows) * 1000.0).astype(np.int16)
    return out


def bone_positions(root_rows: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """(n, 55, 3) world positions of the bones in `blocks`, given their roots' rows."""
    if root_rows.dtype != ROW_DTYPE:
        raise TypeError("root_rows must be ROW_DTYPE rows")
    return root_rows["pos"][:, None, :] + blocks["bones"].astype(np.float32) / 1000.0
