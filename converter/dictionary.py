"""Character dictionaries of recognisers, carried inside the checkpoint.

PaddleOCR's label decoders add special tokens to the dictionary lines (+ " " when
use_space_char): CTC one blank, attention decoders their start/end/padding tokens. A table
states how many (``dict_special_tokens``, default 1 for CTC), so a recogniser with N classes
needs a dictionary of N - special or N - special - 1 lines; anything else is refused.
"""

from pathlib import Path

from ..errors import PtocrError

SHIPPED = Path(__file__).resolve().parent.parent / "dicts"


def read_dict_file(path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PtocrError(f"{path}: cannot read dictionary ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise PtocrError(f"{path}: dictionary is not UTF-8 text") from None
    return [line.rstrip("\r\n") for line in text.splitlines()]


def resolve(spec, weights, n_classes, rec_dict=None, use_space_char=None):
    """{character_dict, use_space_char, dict_source} for a CTC recogniser, or None.

    Sources, first found: --rec-dict FILE; the export's inference.yml
    (PostProcess.character_dict); the dictionary file the table names, beside the weights or
    shipped with ptocr.
    """
    if spec.task == "table":
        return _table_dict(spec, weights, n_classes, rec_dict)
    if spec.task == "layout":
        return _layout_dict(spec, n_classes, rec_dict, weights)
    if spec.task not in ("rec", "e2e"):  # e2e: PGNet reads characters too
        if rec_dict:
            raise PtocrError(f"--rec-dict applies to recognisers and end-to-end models; "
                             f"{spec.name} is {spec.task}")
        return None
    post = ((weights.inference_yml or {}).get("PostProcess") or {}) if weights else {}
    if rec_dict:
        chars, source = read_dict_file(rec_dict), str(rec_dict)
    elif isinstance(post.get("character_dict"), list):
        chars, source = [str(c) for c in post["character_dict"]], "inference.yml"
        if use_space_char is None and "use_space_char" in post:
            use_space_char = bool(post["use_space_char"])
    elif spec.dictionary:
        beside = [Path(f).parent / spec.dictionary for f in (weights.files if weights else [])]
        found = [p for p in beside + [SHIPPED / spec.dictionary] if p.is_file()]
        if not found:
            raise PtocrError(f"{spec.name}: dictionary {spec.dictionary} not found; "
                             "pass --rec-dict FILE")
        chars, source = read_dict_file(found[0]), found[0].name
    else:
        raise PtocrError(f"{spec.name}: no character dictionary known; pass --rec-dict FILE")
    special = spec.dict_special_tokens
    if use_space_char is None:
        use_space_char = spec.use_space_char if n_classes is None else (
            n_classes == len(chars) + special + 1)
    expected = len(chars) + special + int(use_space_char)
    if n_classes is not None and expected != n_classes:
        tokens = "blank" if special == 1 else f"{special} special tokens"
        raise PtocrError(
            f"dictionary {source} has {len(chars)} entries: with {tokens}"
            f"{' and space' if use_space_char else ''} that is {expected} classes, "
            f"the model has {n_classes}")
    return {"character_dict": chars, "use_space_char": bool(use_space_char),
            "dict_source": source}


def _table_dict(spec, weights, n_classes, path=None):
    """The structure dictionary of a table recogniser (PaddleOCR's table_structure_dict*.txt).
    With merge_no_span_structure the decoder uses '<td></td>' in place of '<td>'; with the
    table's special tokens (sos, eos) that must give the model's class count."""
    if path:
        chars, source = read_dict_file(path), str(path)
    elif spec.dictionary and (SHIPPED / spec.dictionary).is_file():
        chars, source = read_dict_file(SHIPPED / spec.dictionary), spec.dictionary
    else:
        return None  # a structure-only conversion; the table pipeline asks for one
    post = (spec.processing or {}).get("PostProcess") or {}
    tokens = list(chars)
    if post.get("merge_no_span_structure"):
        tokens = [c for c in tokens if c != "<td>"] + (
            [] if "<td></td>" in tokens else ["<td></td>"])
    expected = len(tokens) + spec.dict_special_tokens
    if n_classes is not None and expected != n_classes:
        raise PtocrError(f"structure dictionary {source} gives {expected} classes, the model "
                         f"has {n_classes}")
    return {"character_dict": chars, "dict_source": source}


def _layout_dict(spec, n_classes, path=None, weights=None):
    """The label list of a layout model (PaddleOCR's layout_dict/*.txt, one label a line):
    --rec-dict FILE, else the export's inference.yml ``label_list`` (PaddleX's exports carry
    one), else the file the table names; one label per class."""
    yml_labels = ((weights.inference_yml or {}) if weights else {}).get("label_list")
    if path:
        labels, source = read_dict_file(path), str(path)
    elif isinstance(yml_labels, list) and yml_labels:
        labels, source = [str(v) for v in yml_labels], "inference.yml"
    elif spec.dictionary and (SHIPPED / spec.dictionary).is_file():
        labels, source = read_dict_file(SHIPPED / spec.dictionary), spec.dictionary
    else:
        raise PtocrError(f"{spec.name}: no layout label list known; pass --rec-dict FILE")
    labels = [label for label in labels if label.strip()]
    if n_classes is not None and len(labels) != n_classes:
        raise PtocrError(f"layout labels {source} has {len(labels)} entries, the model "
                         f"predicts {n_classes} classes; pass --rec-dict FILE")
    return {"character_dict": labels, "dict_source": source}
