"""The OCR system's settings, as PaddleOCR's tools/infer/utility.py names them.

``OPERATOR_OPTIONS`` maps a setting onto a parameter of a processing operator: it overrides
the value the checkpoint carries, and only when the checkpoint's processing has that operator
(``--det-db-thresh`` means nothing to an EAST detector). A new algorithm adds its rows here;
the CLI makes an option of each. ``SystemOptions`` are the system's own settings.
"""

from dataclasses import dataclass, fields
from typing import NamedTuple


class OperatorOption(NamedTuple):
    name: str  # PaddleOCR's argument name
    stage: str  # det | rec | cls | e2e
    op: str  # operator class name in the processing
    param: str  # its parameter
    type: type
    help: str


def _shape(value):
    """'3,48,320' or (3, 48, 320) -> [3, 48, 320]."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        shape = [int(v) for v in parts]
    except ValueError:
        shape = []
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(f"image shape must be C,H,W, not {value!r}")
    return shape


def _ints(value):
    """'8,16,32' or [8, 16, 32] -> [8, 16, 32]."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        return [int(v) for v in parts]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, not {value!r}") from None


OPERATOR_OPTIONS = [
    OperatorOption("det_limit_side_len", "det", "DetResizeForTest", "limit_side_len", int,
                   "side limit for detection resizing (PaddleOCR: 960)"),
    OperatorOption("det_limit_type", "det", "DetResizeForTest", "limit_type", str,
                   "max | min | resize_long (PaddleOCR: max)"),
    OperatorOption("det_db_thresh", "det", "DBPostProcess", "thresh", float,
                   "DB binarisation threshold (0.3)"),
    OperatorOption("det_db_box_thresh", "det", "DBPostProcess", "box_thresh", float,
                   "DB box score threshold (0.6)"),
    OperatorOption("det_db_unclip_ratio", "det", "DBPostProcess", "unclip_ratio", float,
                   "DB unclip ratio (1.5)"),
    OperatorOption("det_db_score_mode", "det", "DBPostProcess", "score_mode", str,
                   "DB box score: fast | slow (fast)"),
    OperatorOption("use_dilation", "det", "DBPostProcess", "use_dilation", bool,
                   "dilate the DB mask (off)"),
    OperatorOption("max_candidates", "det", "DBPostProcess", "max_candidates", int,
                   "most DB contours considered (1000)"),
    OperatorOption("det_east_score_thresh", "det", "EASTPostProcess", "score_thresh", float,
                   "EAST pixel score threshold (0.8)"),
    OperatorOption("det_east_cover_thresh", "det", "EASTPostProcess", "cover_thresh", float,
                   "EAST mean score inside a box (0.1)"),
    OperatorOption("det_east_nms_thresh", "det", "EASTPostProcess", "nms_thresh", float,
                   "EAST locality-aware NMS IoU threshold (0.2)"),
    OperatorOption("det_pse_thresh", "det", "PSEPostProcess", "thresh", float,
                   "PSE kernel threshold on the logits (0)"),
    OperatorOption("det_pse_box_thresh", "det", "PSEPostProcess", "box_thresh", float,
                   "PSE mean text score of a region (0.85)"),
    OperatorOption("det_pse_min_area", "det", "PSEPostProcess", "min_area", float,
                   "PSE smallest region in pixels (16)"),
    OperatorOption("det_pse_scale", "det", "PSEPostProcess", "scale", int,
                   "PSE maps upsampled by 4 / scale before expansion (1)"),
    OperatorOption("det_box_type", "det", "PSEPostProcess", "box_type", str,
                   "quad | poly (quad)"),
    OperatorOption("rec_image_shape", "rec", "RecResizeImg", "image_shape", _shape,
                   "recogniser input C,H,W (from the checkpoint, PP-OCR: 3,48,320)"),
    OperatorOption("cls_image_shape", "cls", "ClsResizeImg", "image_shape", _shape,
                   "classifier input C,H,W (3,48,192)"),
    # SAST, FCENet (a name may have one row per operator it sets; the CLI makes one option)
    OperatorOption("det_sast_score_thresh", "det", "SASTPostProcess", "score_thresh", float,
                   "SAST score threshold (0.5; PaddleOCR passes it, its decoder cuts the TCL "
                   "map at tcl_map_thresh)"),
    OperatorOption("det_sast_nms_thresh", "det", "SASTPostProcess", "nms_thresh", float,
                   "SAST locality-aware NMS IoU threshold (0.2)"),
    OperatorOption("det_box_type", "det", "SASTPostProcess", "box_type", str,
                   "quad | poly: polygons where the detector gives them (from the checkpoint)"),
    OperatorOption("det_box_type", "det", "FCEPostProcess", "box_type", str,
                   "quad | poly"),
    OperatorOption("scales", "det", "FCEPostProcess", "scales", _ints,
                   "FCE output strides, e.g. 8,16,32"),
    OperatorOption("alpha", "det", "FCEPostProcess", "alpha", float,
                   "FCE score = region^alpha * centre^beta (alpha 1.0)"),
    OperatorOption("beta", "det", "FCEPostProcess", "beta", float, "FCE beta (1.0)"),
    OperatorOption("fourier_degree", "det", "FCEPostProcess", "fourier_degree", int,
                   "FCE Fourier degree (5)"),

    OperatorOption("max_text_length", "rec", "VLLabelDecode", "max_text_length", int,
                   "VisionLAN: slots read at most (25)"),
    # layout analysis (ppstructure/utility.py)
    OperatorOption("layout_score_threshold", "layout", "PicoDetPostProcess", "score_threshold",
                   float, "layout region score threshold (0.5)"),
    OperatorOption("layout_nms_threshold", "layout", "PicoDetPostProcess", "nms_threshold",
                   float, "layout NMS IoU threshold (0.5)"),

    # end-to-end (PGNet; predict_e2e.py)
    OperatorOption("e2e_limit_side_len", "e2e", "E2EResizeForTest", "max_side_len", float,
                   "PGNet resizing: height limit of the x1.25 enlargement (768)"),
    OperatorOption("e2e_limit_type", "e2e", "E2EResizeForTest", "limit_type", str,
                   "max only (PaddleOCR's predict_e2e takes it and resizes as above)"),
    OperatorOption("e2e_pgnet_score_thresh", "e2e", "PGPostProcess", "score_thresh", float,
                   "PGNet text centre line threshold (0.5)"),
    OperatorOption("e2e_char_dict_path", "e2e", "PGPostProcess", "character_dict_path", str,
                   "PGNet character dictionary file (default: the checkpoint's)"),
    OperatorOption("e2e_pgnet_valid_set", "e2e", "PGPostProcess", "valid_set", str,
                   "totaltext (polygons) | partvgg (4 points) (totaltext)"),
    OperatorOption("e2e_pgnet_mode", "e2e", "PGPostProcess", "mode", str,
                   "PGNet decoding: fast | slow (fast)"),
    OperatorOption("e2e_pgnet_point_gather_mode", "e2e", "PGPostProcess", "point_gather_mode",
                   str, "align: read characters at every pixel of the path (PGPostProcess's "
                   "point_gather_mode; default none)"),
    # PaddleX layout exports (PP-DocLayout: NMS or DETR post-processing inside the program):
    # PaddleX's DetPostProcess
    OperatorOption("layout_score_threshold", "layout", "DetPostProcess", "threshold", float,
                   "layout region score threshold (0.5)"),
    OperatorOption("layout_nms", "layout", "DetPostProcess", "layout_nms", bool,
                   "PaddleX layout NMS over the detected boxes (off)"),
]


@dataclass
class SystemOptions:
    """predict_system's own settings (tools/infer/utility.py defaults)."""

    rec_batch_num: int = 6
    cls_batch_num: int = 6
    cls_thresh: float = 0.9
    drop_score: float = 0.5


def split_options(options):
    """User settings -> (SystemOptions, {stage: {OpName: {param: value}}}); None means 'from
    the checkpoint'. Unknown names are a TypeError, as for any Python call."""
    by_name = {}
    for o in OPERATOR_OPTIONS:
        by_name.setdefault(o.name, []).append(o)
    system_names = {f.name for f in fields(SystemOptions)}
    unknown = set(options) - set(by_name) - system_names
    if unknown:
        raise TypeError(f"unknown OCR options: {', '.join(sorted(unknown))}")
    overrides = {}
    for name, value in options.items():
        for o in by_name.get(name, []) if value is not None else []:
            typed = o.type(value) if o.type is not bool else bool(value)
            overrides.setdefault(o.stage, {}).setdefault(o.op, {})[o.param] = typed
    system = SystemOptions(**{k: v for k, v in options.items()
                              if k in system_names and v is not None})
    return system, overrides
