"""Instance masks as polygons a web client can fill, at a bounded size per job.

Coordinates are pixel corners in the original photo: pixel (column c, row r) is the square
from (c, r) to (c + 1, r + 1), so the outline of a one-pixel mask at (3, 4) is
[[3, 4], [4, 4], [4, 5], [3, 5]], the photo's own outline runs from (0, 0) to
(width, height), and an unsimplified ring's area is exactly its pixel count. A ring is
open (its last point joins its first). A part is {"exterior": ring, "holes": [ring, ...]};
an instance's `polygons` is its parts, largest first. Exteriors run anticlockwise and holes
clockwise as seen on screen (y down), so one canvas Path2D of all of an instance's rings
fills right with either rule, `fill("evenodd")` or the default `nonzero`.

Each ring is simplified by Douglas-Peucker (cv2.approxPolyDP) within `tolerance()` pixels.
A job's rings hold at most MAX_POLYGON_POINTS points in all: past that the tolerance is
doubled, up to TOLERANCE_STEPS[-1] times, while doubling pays, and then the smallest rings
(parts, holes) are left out; `polygon_budget` in the summary says which of the two happened.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np

# About 10 bytes of the API's JSON a point ("[1234,567],"): at most ~100 KB of polygons per
# job, where a photo's ordinary instances take a few hundred points (README, "Polygons").
MAX_POLYGON_POINTS = 10_000
# Multiples of each instance's tolerance tried, in turn, until the job's rings fit, while
# each step leaves at most this share of the points before it.
TOLERANCE_STEPS = (1, 2, 4, 8, 16)
SAVING_WORTH_A_STEP = 0.9
# Masks larger than this (pixels of the instance's box) are traced on a coarser grid: the
# doubled grid (_doubled) takes 8 bytes a pixel while it is built, 32 MB at this size, which
# must stay small beside a 40 MP photo's job (README, "What one request costs").
MAX_TRACE_PIXELS = 4_000_000
# Every ring kept has at least this many points, so at most max_points // MIN_RING_POINTS
# rings are ever simplified: a mask of 100,000 specks costs its trace, not 100,000 fits.
MIN_RING_POINTS = 3


@dataclass
class _Ring:
    instance: int  # position in the job's instances
    part: int  # the part's position among the instance's parts
    hole: bool
    area: float  # pixels, unsimplified
    points: np.ndarray  # (n, 2) int32 pixel corners in the photo, unsimplified
    tolerance: float  # pixels: how far simplification may move its outline


def tolerance(box):
    """Half a pixel for instances up to 100 px, growing to 1 px from 200 px."""
    x0, y0, x1, y1 = box
    return min(1.0, max(0.5, 0.005 * max(x1 - x0, y1 - y0)))


def instance_polygons(instances, max_points=MAX_POLYGON_POINTS):
    """([parts of each instance], budget): the instances' outlines within `max_points`."""
    # 1. Every ring, exact, most important first: each instance's largest part, then all
    #    other rings by area (a hole after its part, being smaller). No more rings than
    #    could ever fit: a ring has at least MIN_RING_POINTS points.
    limit = max_points // MIN_RING_POINTS
    traced = [_traced(position, instance, limit) for position, instance in enumerate(instances)]
    rings = sorted(
        (ring for found, _ in traced for ring in found),
        key=lambda ring: (ring.part != 0 or ring.hole, -ring.area),
    )[:limit]
    total = sum(len(found) + left_out for found, left_out in traced)

    # 2. Simplified within each ring's tolerance; while the job's rings do not fit, within
    #    twice, four times... that. A doubling that saves under a tenth of the points is
    #    undone: what is over then is many small rings, which step 3 leaves out, and every
    #    outline would be coarser for nothing.
    step, simplified = _simplified_to_fit(rings, max_points)

    # 3. Still over: keep rings in their order while the budget allows, each hole only with
    #    its part.
    kept, used, parts_kept = [], 0, set()
    for ring, points in zip(rings, simplified, strict=True):
        fits = len(points) >= MIN_RING_POINTS and used + len(points) <= max_points
        if fits and (not ring.hole or (ring.instance, ring.part) in parts_kept):
            kept.append((ring, points))
            used += len(points)
            parts_kept.add((ring.instance, ring.part))
    budget = {
        "max_points": max_points,
        "points": used,
        "simplified": step > 1,
        "truncated": len(kept) < total,
    }
    return _assembled(kept, len(instances)), budget


def _simplified_to_fit(rings, max_points):
    """(step, points of each ring) at the first of TOLERANCE_STEPS that fits, or that the
    next would not improve by a tenth."""
    best = None
    for step in TOLERANCE_STEPS:
        simplified = [_simplified(ring.points, ring.tolerance * step) for ring in rings]
        points = sum(len(ring) for ring in simplified)
        if best is not None and points > SAVING_WORTH_A_STEP * best[2]:
            break
        best = (step, simplified, points)
        if points <= max_points:
            break
    return best[0], best[1]


def _assembled(kept, count):
    """The kept rings as each instance's parts: {"exterior": ring, "holes": [ring, ...]}."""
    parts = [{} for _ in range(count)]
    for ring, points in sorted(kept, key=lambda item: (item[0].hole, -item[0].area)):
        if ring.hole:
            parts[ring.instance][ring.part]["holes"].append(points.tolist())
        else:
            parts[ring.instance][ring.part] = {"exterior": points.tolist(), "holes": []}
    return [list(by_part.values()) for by_part in parts]


def _traced(position, instance, limit):
    """(rings, left out): an instance's `limit` most important rings, exact, in the photo's
    pixel corners, and how many more it has. Parts are numbered by area, largest first."""
    x0, y0, x1, y1 = instance.box
    mask, factor = _coarsened(instance.mask)
    contours, hierarchy = cv2.findContours(_doubled(mask), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return [], 0
    parents = hierarchy[0][:, 3]
    areas = [cv2.contourArea(contour) for contour in contours]  # C, fast: before any numpy
    outer = sorted((int(i) for i in np.flatnonzero(parents < 0)), key=lambda i: -areas[i])
    part_of = {contour: number for number, contour in enumerate(outer)}
    # The largest part, then by area: a hole, smaller than its part, never comes before it.
    chosen = sorted(range(len(contours)), key=lambda i: (i != outer[0], -areas[i]))[:limit]
    offset = np.array([x0, y0], dtype=np.int32)
    limits = np.array([x1 - x0, y1 - y0], dtype=np.int32)
    size = tolerance(instance.box)
    rings = []
    for i in chosen:
        points = np.minimum(_corners(contours[i]) * factor, limits) + offset
        hole, parent = bool(parents[i] >= 0), int(parents[i])
        rings.append(
            _Ring(
                instance=position,
                part=part_of[parent if hole else i],
                hole=hole,
                area=_area(points),
                points=_oriented(points, hole),
                tolerance=size,
            )
        )
    return rings, len(contours) - len(chosen)


def _coarsened(mask):
    """(mask, factor): a mask over MAX_TRACE_PIXELS as blocks of factor x factor pixels,
    each set where at least half of it is."""
    factor = math.ceil(math.sqrt(mask.size / MAX_TRACE_PIXELS))
    if factor <= 1:
        return mask, 1
    height, width = mask.shape
    padded = np.zeros((-(-height // factor) * factor, -(-width // factor) * factor), dtype=np.uint8)
    padded[:height, :width] = mask
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    return blocks.sum(axis=(1, 3), dtype=np.int32) * 2 >= factor * factor, factor


def _doubled(mask):
    """The mask on a grid of half pixels, one cell wider: pixel (c, r) becomes the 3x3 cells
    from (2c, 2r) to (2c + 2, 2r + 2). OpenCV traces the centres of a shape's border cells;
    here those lie on the pixels' edges, so the trace halved is the pixels' own outline."""
    height, width = mask.shape
    doubled = np.zeros((2 * height + 1, 2 * width + 1), dtype=np.uint8)
    stretched = np.repeat(np.repeat(mask.astype(np.uint8), 2, axis=0), 2, axis=1)
    for dy in (0, 1):
        for dx in (0, 1):
            doubled[dy : dy + 2 * height, dx : dx + 2 * width] |= stretched
    return doubled


def _corners(contour):
    """A trace of the doubled grid as the pixel corners it passes through.

    OpenCV follows 8-connected borders, so at each concave corner (of a part or of a hole)
    it cuts across by one cell, from the middle of one pixel edge to the middle of the
    next, which would shave an eighth of a pixel there and make a one-pixel hole a diamond
    of half a pixel. The corner it skipped is put back, and the edge middles dropped.
    """
    here = contour[:, 0, :]
    after = np.roll(here, -1, axis=0)
    cut = (np.abs(after - here) == 1).all(axis=1)
    # Of the two corners of the cut, the one whose both coordinates are even (whole pixels).
    even_x = (here[:, 0] % 2 == 0)[:, None]
    skipped = np.where(
        even_x, np.stack([here[:, 0], after[:, 1]], axis=1), np.stack([after[:, 0], here[:, 1]], axis=1)
    )
    sequence = np.stack([here, skipped], axis=1).reshape(-1, 2)
    sequence = sequence[np.stack([np.ones_like(cut), cut], axis=1).reshape(-1)]
    return (sequence[(sequence % 2 == 0).all(axis=1)] // 2).astype(np.int32)


def _area(points):
    return abs(_signed_area(points))


def _signed_area(points):
    """The shoelace sum: positive for a ring clockwise on screen (y down)."""
    x, y = points[:, 0].astype(np.int64), points[:, 1].astype(np.int64)
    return float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)) / 2


def _oriented(points, hole):
    """Exteriors anticlockwise on screen, holes clockwise: opposite windings, so that the
    nonzero fill rule leaves holes open as evenodd does."""
    clockwise = _signed_area(points) > 0
    return points[::-1].copy() if clockwise != hole else points


def _simplified(points, epsilon):
    """Douglas-Peucker within `epsilon`, but never more than a quarter of the ring's
    narrower side: a small part keeps its shape instead of folding to a line, and a
    budget too tight for many small rings leaves some out rather than deforming all."""
    width, height = points.max(axis=0) - points.min(axis=0)
    epsilon = min(epsilon, 0.25 * min(width, height))
    return cv2.approxPolyDP(points.reshape(-1, 1, 2), epsilon, closed=True).reshape(-1, 2)
