"""Every tunable of tracking and mask planning, declared once with its unit and the reason for its value.

The tracker (track/tracker.py), its motion model (track/kalman.py) and the
look-ahead (track/lookahead.py) read them from one frozen TrackingPolicy, and a
redaction report records it, so a report says which policy masked its video.
Times are in seconds and speeds in face widths per second, so they mean the same
at 2 fps and at 60; sizes are shares of the frame's long side, so they mean the
same at 480p and at 4K (tests/test_scale.py). The measurements behind the values
are in benchmarks/RESULTS.md. What a user chooses (the start score, --hold,
--lookahead) is in settings.py, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _tunable(default: float, unit: str, why: str) -> Any:
    return field(default=default, metadata={"unit": unit, "why": why})


@dataclass(frozen=True)
class TrackingPolicy:
    """The tracking and look-ahead tunables (see each field's `why`, and `describe()` for the report)."""

    small_face: float = _tunable(
        0.0375, "of the frame's long side",
        "whole-frame BlazeFace (192 px across the long side) finds no face under 7.2 px there, so smaller ones only "
        "the sweep sees and the tracker gives them more patience (48 px at 720p, where it was measured)")
    large_face: float = _tunable(
        0.075, "of the frame's long side",
        "faces this large score 0.64 or more in whole-frame BlazeFace nine frames in ten: one first found now was "
        "no face a few frames ago, so it is painted back only large_backfill (96 px at 720p)")
    small_hold: float = _tunable(
        2.0, "x --hold",
        "a small face's track found small_hold_finds times is held this much longer: a 25 px face in night-IR "
        "noise went unfound for 1.8 s between two runs of detections")
    small_hold_finds: int = _tunable(
        3, "finds",
        "how often a small face's track must have been found to be held longer: one found once or twice may be "
        "noise (a patch the sweep scored 0.57 once held a mask for 2 s)")
    same_size: float = _tunable(
        1.5, "x",
        "two finds (or a find and a box) within this factor of each other's size may be one face: faint finds "
        "chained into a trace or a walking line, the two ends of an interpolated gap, and a coasting track's box "
        "against its last find (a far face walking at the camera grows ~1.2 times in 2 s)")
    match_size: float = _tunable(
        2.0, "x the last detected size",
        "a track takes a find away from its box only within this factor of the face's last detected size: a "
        "20 px face's coasting track took a 48 px find of clutter 140 px away")
    match_overlap: float = _tunable(
        0.1, "IoU",
        "a find overlapping a track's predicted box this much is that face's; less, it must lie within reach "
        "(and a faint one near a confident find steers nothing)")
    match_reach: float = _tunable(
        1.0, "face sizes",
        "how far from a track's prediction a find of the face's size may lie, at least")
    match_sigmas: float = _tunable(
        3.0, "standard deviations",
        "and further where the position is this uncertain: a fast face seen again after sparse detection")
    margin_sigmas: float = _tunable(
        2.0, "standard deviations",
        "a box guessed between finds grows by this much of its position uncertainty (a coasting track's at most "
        "a face size)")
    wander: float = _tunable(
        0.035, "face widths^2/s",
        "how far a face strays from the straight line between two of its finds, as a random walk (the middle "
        "sits sqrt(wander x gap / 4) off it): the real design clips' hand-checked tracks give 0.021-0.034 over "
        "gaps of 0.16-1.5 s (python -m benchmarks.wander)")
    walk_speed: float = _tunable(
        12.0, "face widths/s",
        "the fastest line of faint finds that starts a small face's track: 1.4 m/s is ~9 widths of a 15 cm face, "
        "and a detector's box is ~0.85 of the face")
    start_spread: float = _tunable(
        0.1, "face sizes",
        "the motion model's uncertainty of a new track's place (one standard deviation)")
    start_speed: float = _tunable(
        3.0, "face widths/s",
        "and of its speed, unknown at first: real faces went at most 3.1 face widths a second over 0.2 s, 2.9 at "
        "the 99th percentile (python -m benchmarks.wander)")
    acceleration: float = _tunable(
        1.5, "face widths/s^2",
        "how fast a face's motion may change between frames (its process noise): people change pace, turn and "
        "crouch")
    box_noise: float = _tunable(
        0.05, "face sizes",
        "a detected box's jitter around the face (the motion model's measurement noise)")
    jump_speed: float = _tunable(
        8.0, "face widths/s",
        "a find further from the prediction than jump_slack plus a face going this fast restarts the motion "
        "estimate there: a camera cut or a neighbour read as motion sent masks flying off at hundreds of px/s")
    jump_slack: float = _tunable(
        0.25, "face sizes",
        "the distance from the prediction any find may lie without counting as a jump")
    anchor: float = _tunable(
        0.5, "s",
        "this soon after a confident find, a faint find steers the track only where it overlaps the prediction: "
        "faint BlazeFace boxes can sit a third of a face or more off it")
    chain: float = _tunable(
        1.0, "s",
        "how long faint finds are remembered, to see a walker's earlier steps (and where a new track's face was "
        "first seen faintly) in them")
    chain_tolerance: float = _tunable(
        0.5, "face sizes",
        "how far the middle of three faint finds may sit off the straight, steady line through the others")
    backfill: float = _tunable(
        0.5, "s",
        "how far back a new track's first box is painted before its motion is known")
    large_backfill: float = _tunable(
        0.2, "s",
        "the same for a large face: half a second around faces that appear mid-picture changed 1.1-1.4% of two "
        "crowd clips' background")
    backfill_speed: float = _tunable(
        1.0, "face widths/s",
        "how fast the margin of a box painted back grows while the face's motion is unknown (more cost "
        "background everywhere)")
    paint_speed: float = _tunable(
        0.5, "face widths/s",
        "how fast that margin grows around a box painted back along a known motion")
    gap_speed: float = _tunable(
        5.0, "face widths/s",
        "the furthest a face may have gone (beyond one face size) for the line between two finds of one track "
        "to be taken for it: a tracker that swapped two faces hands over a jump no face made")
    motion_span: float = _tunable(
        0.15, "s",
        "two finds at least this far apart give a motion to paint back along: one frame apart, a box's jitter of "
        "a tenth of its size reads as a face's width in 0.4 s")

    def small_below(self, width: int, height: int) -> float:
        """`small_face` in px for a `width` x `height` frame."""
        return self.small_face * max(width, height)

    def large_from(self, width: int, height: int) -> float:
        """`large_face` in px for a `width` x `height` frame."""
        return self.large_face * max(width, height)

    def describe(self) -> dict[str, dict[str, Any]]:
        """Every tunable's value, unit and reason, for a report."""
        return {f.name: {"value": getattr(self, f.name), "unit": f.metadata["unit"], "why": f.metadata["why"]}
                for f in fields(self)}


POLICY = TrackingPolicy()
"""The policy every stage uses unless given another."""
