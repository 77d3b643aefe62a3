"""PGNet post-processing (ppocr/postprocess/pg_postprocess.py with ppocr/utils/e2e_utils/):
the text centre line (TCL) map is thinned to one-pixel skeletons, each skeleton is ordered
along the predicted reading direction and extended at both ends while it stays on the TCL,
the character map is read along it with CTC greedy decoding, and the border offsets at the
sampled points give the polygon.

Calling convention: ``op(preds, shape_list) -> [{'points': [polygon], 'texts': [str]}]`` for
the first image (PaddleOCR decodes one image per call), ``preds`` the model's outputs in the
program's order (f_border, f_char, f_direction, f_score) or a dict by those names.
"""

from itertools import groupby

import numpy as np

from ...errors import PtocrError
from ..registry import register
from .sast import _expand_poly_along_width as expand_poly_along_width  # PaddleOCR shares it

OUTPUT_NAMES = ("f_border", "f_char", "f_direction", "f_score")
PTS_NUM = 6  # points sampled per instance (fast mode): a 12-point polygon


def _thin(binary):
    """Morphological thinning to one-pixel skeletons (scikit-image's ``thin``, the one
    PaddleOCR uses)."""
    try:
        from skimage.morphology import thin
    except ImportError:
        raise PtocrError("PGNet's post-processing needs scikit-image "
                         "(pip install 'ptocr[e2e]')") from None
    return thin(binary)


def _components(p_tcl_map):
    """Pixel lists (y, x) of the 8-connected skeleton pieces, in label order."""
    import cv2

    skeleton = _thin(p_tcl_map.astype(np.uint8))
    count, labels = cv2.connectedComponents(skeleton.astype(np.uint8), connectivity=8)
    for label in range(1, count):
        ys, xs = np.where(labels == label)
        yield list(zip(ys, xs))


def _sort_part(points, directions):
    """Order points by their projection on the mean direction (stable order of argsort)."""
    points = np.array(points).reshape(-1, 2)
    directions = np.array(directions).reshape(-1, 2)
    order = np.argsort(np.sum(points * np.mean(directions, axis=0, keepdims=True), axis=1))
    return points[order].tolist(), directions[order].tolist()


def sort_with_direction(pos_list, f_direction):
    """Skeleton points ordered along the direction field (f_direction: H×W×2, x then y);
    long pieces (16+ points) re-order each half by its own mean direction, for curves."""
    pos = np.array(pos_list).reshape(-1, 2)
    directions = f_direction[pos[:, 0], pos[:, 1]][:, ::-1]  # (x, y) -> (y, x)
    points, dirs = _sort_part(pos, directions)
    if len(points) >= 16:
        half = len(points) // 2
        first, first_dirs = _sort_part(points[:half], dirs[:half])
        last, last_dirs = _sort_part(points[half:], dirs[half:])
        points, dirs = first + last, first_dirs + last_dirs
    return points, np.array(dirs)


def sort_and_expand(pos_list, f_direction, tcl_map):
    """The ordered skeleton extended at each end along its end directions, one unit step at a
    time, while the step lands inside the map (below its height/width) on the TCL."""
    h, w, _ = f_direction.shape
    points, directions = sort_with_direction(pos_list, f_direction)
    n = len(points)
    sub = max(n // 3, 2)
    left_dir = -np.mean(directions[:sub, :], axis=0, keepdims=True)
    right_dir = np.mean(directions[n - sub:, :], axis=0, keepdims=True)
    left_len, right_len = np.linalg.norm(left_dir), np.linalg.norm(right_dir)
    left_step, right_step = left_dir / (left_len + 1e-6), right_dir / (right_len + 1e-6)
    max_steps = 2 * max(int((left_len + right_len) / 2.0 * 0.15), 1)

    def walk(start, step):
        found = []
        for i in range(max_steps):
            y, x = np.round(start + step * (i + 1)).flatten().astype("int32").tolist()
            if y < h and x < w and (y, x) not in found:
                if tcl_map[y, x] > 0.5:
                    found.append((y, x))
                else:
                    break
        return found

    left = walk(np.array(points[0]), left_step)
    right = walk(np.array(points[-1]), right_step)
    return left[::-1] + points + right


def _align_points(gather_info):
    """point_gather_mode 'align': integer points inserted between consecutive samples so the
    reading path has no gaps (PaddleOCR's scheme, kept as it is: inserted values are cast to
    the path's integer dtype, and a repeated point shifts the later insertions back by one)."""
    path = np.array(gather_info)
    inserted = 0
    for index in range(len(path) - 1):
        a, b = path[index + inserted], path[index + 1 + inserted]
        steps = int(max(np.abs(a[1] - b[1]), np.abs(a[0] - b[0])))
        with np.errstate(divide="ignore", invalid="ignore"):
            stride = (a - b) / steps
        for i in range(steps - 1):
            path = np.insert(path, index + i + 1 + inserted, a - (i + 1) * stride, axis=0)
        inserted += steps - 1
    return path.tolist()


def decode_fast(paths, char_map, lexicon, point_gather_mode=None):
    """CTC greedy decoding of the character logits (H×W×C, blank last) along each path of at
    least PTS_NUM points; ([text], [PTS_NUM sampled points]) of texts with 2+ characters."""
    blank = char_map.shape[2] - 1
    texts, samples = [], []
    for path in paths:
        if len(path) < PTS_NUM:
            continue
        if point_gather_mode == "align":
            path = _align_points(path)
        ys, xs = zip(*path)
        labels = np.argmax(char_map[list(ys), list(xs)], axis=1)
        text = "".join(lexicon[k] for k, _ in groupby(labels) if k != blank)
        step = len(path) // (PTS_NUM - 1)
        keep = [0] + [step * (i + 1) for i in range(PTS_NUM - 2)] + [-1]
        if len(text) < 2:
            continue
        texts.append(text)
        samples.append([path[i] for i in keep])
    return texts, samples


def _softmax(logits):
    e = np.exp(logits - np.max(logits, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def decode_slow(paths, char_map):
    """Slow mode: softmax, then greedy CTC keeping the middle point of every run (blank runs
    too); ([[class]], [[(y, x)]])."""
    blank = char_map.shape[2] - 1
    results = []
    for path in paths:
        ys, xs = zip(*path)
        labels = np.argmax(_softmax(char_map[list(ys), list(xs)]), axis=1)
        chars, keep, start = [], [], 0
        for k, run in groupby(labels):
            n = len(list(run))
            keep.append(path[start + n // 2])
            if k != blank:
                chars.append(k)
            start += n
        results.append((chars, keep))
    return results


def point_pair2poly(pairs):
    """Point pairs (one on each border) -> polygon: first points forwards, second backwards."""
    n = len(pairs) * 2
    points = [0] * n
    for i, pair in enumerate(pairs):
        points[i] = pair[0]
        points[n - 1 - i] = pair[1]
    return np.array(points).reshape(-1, 2)


@register("PostProcess")
class PGPostProcess:
    """PaddleOCR's PGPostProcess. ``character_dict_path`` (a file) overrides the dictionary
    the checkpoint carries (``character_dict``); PaddleOCR reads it as all its lines joined
    into one string of characters. ``valid_set``: totaltext (polygons, offsets x1.2) or
    partvgg (4-point polygons); ``mode``: fast (fixed 6-point sampling) or slow (every CTC
    run, totaltext only: PaddleOCR's slow partvgg path fails); ``point_gather_mode``: None or
    'align' (fast mode reads the character map at every pixel between samples)."""

    def __init__(self, character_dict_path=None, valid_set="totaltext", score_thresh=0.5,
                 mode="fast", point_gather_mode=None, character_dict=None, **_training_only):
        if character_dict_path:
            try:
                with open(character_dict_path, "rb") as fh:
                    lines = [line.decode("utf-8").strip("\n").strip("\r\n") for line in fh]
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"{character_dict_path}: cannot read the character "
                                 f"dictionary ({exc.__class__.__name__})") from None
        elif character_dict is not None:
            lines = list(character_dict)
        else:
            raise ValueError("PGPostProcess needs the character dictionary (the checkpoint's, "
                             "or character_dict_path)")
        if valid_set not in ("totaltext", "partvgg"):
            raise ValueError(f"PGPostProcess valid_set must be totaltext or partvgg, not "
                             f"{valid_set!r}")
        if mode not in ("fast", "slow"):
            raise ValueError(f"PGPostProcess mode must be fast or slow, not {mode!r}")
        if mode == "slow" and valid_set != "totaltext":
            raise ValueError("PGPostProcess mode slow decodes valid_set totaltext only "
                             "(PaddleOCR's slow partvgg path fails)")
        if point_gather_mode in ("none", "None", ""):
            point_gather_mode = None
        if point_gather_mode not in (None, "align"):
            raise ValueError(f"PGPostProcess point_gather_mode must be align or none, not "
                             f"{point_gather_mode!r}")
        self.lexicon = list("".join(lines))
        self.valid_set, self.score_thresh = valid_set, float(score_thresh)
        self.mode, self.point_gather_mode = mode, point_gather_mode

    def __call__(self, preds, shape_list):
        maps = preds if isinstance(preds, dict) else dict(zip(OUTPUT_NAMES, preds))
        border, char, direction, score = (np.asarray(maps[k])[0] for k in OUTPUT_NAMES)
        src_h, src_w, ratio_h, ratio_w = shape_list[0]
        tcl = (score[0] > self.score_thresh) * 1.0
        f_direction = direction.transpose(1, 2, 0)
        paths = [sort_and_expand(p, f_direction, tcl) for p in _components(tcl) if len(p) >= 3]
        char_map = char.transpose(1, 2, 0)
        if char_map.shape[2] - 1 > len(self.lexicon):
            raise PtocrError(f"the character dictionary has {len(self.lexicon)} characters, "
                             f"the model {char_map.shape[2] - 1} (+ blank)")
        scale = np.array([ratio_w, ratio_h]).reshape(-1, 2)
        if self.mode == "fast":
            texts, samples = decode_fast(paths, char_map, self.lexicon, self.point_gather_mode)
            polys = [self._fast_poly(s, border, scale, src_w, src_h) for s in samples]
        else:
            polys, texts = [], []
            for chars, keep in decode_slow(paths, char_map):
                text = "".join(self.lexicon[c] for c in chars)
                poly = self._slow_poly(keep, border, scale, src_w, src_h)
                if len(text) >= 2:
                    polys.append(np.round(poly).astype("int32"))
                    texts.append(text)
        return [{"points": polys, "texts": texts}]

    def _finish(self, pairs, src_w, src_h):
        poly = expand_poly_along_width(point_pair2poly(pairs), 0.2)
        poly[:, 0] = np.clip(poly[:, 0], 0, src_w)
        poly[:, 1] = np.clip(poly[:, 1], 0, src_h)
        if self.valid_set == "partvgg":
            mid = len(poly) // 2
            poly = poly[[0, mid - 1, mid, -1], :]
        return poly

    def _fast_poly(self, samples, border, scale, src_w, src_h):
        expand = 1.2 if self.valid_set == "totaltext" else 1.0
        pairs = []
        for y, x in samples:
            offset = border[:, y, x].reshape(2, 2) * expand
            yx = np.array([y, x], dtype=np.float32)
            pairs.append((yx + offset)[:, ::-1] * 4.0 / scale)
        return self._finish(pairs, src_w, src_h)

    def _slow_poly(self, keep, border, scale, src_w, src_h):
        """Slow mode: offsets lengthened by 20% of their length, clipped to 0.5..3 map pixels."""
        keep = list(keep) if len(keep) > 1 else list(keep) * 2
        pairs = []
        for y, x in keep:
            offset = border[:, y, x].reshape(2, 2)
            length = np.linalg.norm(offset, axis=1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                offset = offset + offset / length * np.clip(length * 0.2, 0.5, 3.0)
            yx = np.array([y, x], dtype=np.float32)
            pairs.append((yx + offset)[:, ::-1] * 4.0 / scale)
        return self._finish(pairs, src_w, src_h)
