"""Default models, fetched once: the zoo's official models as cached ptocr checkpoints.

A command that needs a model and gets no path names one through ``--ocr-version``/``--lang``
(PaddleOCR's mapping, mappings/_languages.yaml). The model is fetched from the first source of
the zoo manifest that can be had (``$PTOCR_MANIFEST``, default mappings/_zoo.yaml), converted,
verified when paddle imports, and written atomically to ``$PTOCR_HOME/models/<model>.pth``
(default ``~/.cache/ptocr``). Later calls load that file and touch no network. Downloads,
wheels and unpacked Paddle models stay under ``$PTOCR_HOME/sources`` (partial downloads
are named ``*.partial`` and unpacking happens in ``*.unpacking``, so nothing half-done is
ever taken for a model).
"""

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from ..errors import PtocrError
from . import zoo

LANGUAGES = Path(__file__).resolve().parent.parent / "mappings" / "_languages.yaml"
TASKS = ("det", "rec", "cls")
MIRROR_HINT = ("point the manifest at a mirror: PTOCR_MANIFEST=zoo.yaml, a copy of ptocr's "
               "mappings/_zoo.yaml whose urls are file://, http(s) or local paths")


def home():
    return Path(os.environ.get("PTOCR_HOME") or Path.home() / ".cache" / "ptocr").expanduser()


def manifest_path(manifest=None):
    return Path(manifest or os.environ.get("PTOCR_MANIFEST") or zoo.MANIFEST)


def checkpoint_path(model):
    return home() / "models" / f"{model}.pth"


# ---------------------------------------------------------------- which models

def _languages():
    import yaml

    return yaml.safe_load(LANGUAGES.read_text(encoding="utf-8"))


def versions():
    return list(_languages()["versions"])


def languages():
    """Every language code accepted, sorted."""
    table = _languages()
    codes = {c for v in table["versions"].values() for c in v["rec"]}
    codes |= {c for group in table["groups"].values() for c in group}
    return sorted(codes)


def default_models(ocr_version=None, lang=None):
    """{det, rec, cls: zoo model name} for a version and PaddleOCR language code."""
    table = _languages()
    lang = lang or table["default_lang"]
    rec_lang = next((g for g, codes in table["groups"].items() if lang in codes), lang)
    det_lang = table["det_lang"].get(rec_lang, "ml")
    if ocr_version is None:
        ocr_version = next((v for v in table["version_order"]
                            if rec_lang in table["versions"][v]["rec"]), None)
        if ocr_version is None:
            raise PtocrError(f"unknown language {lang!r} (`ptocr models list --langs` lists "
                             "PaddleOCR's codes)")
    entry = table["versions"].get(ocr_version)
    if entry is None:
        raise PtocrError(f"unknown OCR version {ocr_version!r} "
                         f"(one of {', '.join(table['versions'])})")
    if rec_lang not in entry["rec"]:
        raise PtocrError(f"{ocr_version} has no recogniser for language {lang!r} "
                         f"(it has: {', '.join(sorted(entry['rec']))})")
    det = entry["det"].get(det_lang) or entry["det"].get("ch")
    return {"det": det, "rec": entry["rec"][rec_lang], "cls": entry["cls"]}


# ---------------------------------------------------------------- fetch, convert, cache

@contextmanager
def _lock(model):
    """One process fetches and converts a model at a time; the others wait, then reuse."""
    locks = home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{model}.lock", "w") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process lock, the atomic rename still holds
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _note(message):
    print(message, file=sys.stderr)


def _entry(model, manifest):
    path = manifest_path(manifest)
    for entry in zoo.load_manifest(path):
        if entry["model"] == model:
            return entry
    raise PtocrError(f"{model}: not in the zoo manifest {path}; add an entry for it or pass "
                     "the model's path (--det/--rec/--cls)")


def ensure(model, manifest=None, verify=True, timeout=10, progress=True, note=_note):
    """The cached checkpoint of a zoo model, fetched, converted and verified on first use.

    A model none of whose sources can be reached is one PtocrError naming it and how to
    point the manifest at a mirror; nothing is written under models/ then."""
    out = checkpoint_path(model)
    if out.is_file():
        return out
    with _lock(model):
        if out.is_file():  # another process made it while we waited
            return out
        entry = _entry(model, manifest)
        try:
            model_dir, source = zoo.materialize(entry, home() / "sources", timeout, progress)
        except zoo.Unavailable as exc:
            reason = str(exc)
            reason = reason if len(reason) <= 300 else reason[:297] + "..."
            raise PtocrError(f"{model}: cannot be fetched ({reason}); {MIRROR_HINT}") from None
        note(f"ptocr: fetched {model} ({source}); converting")
        reason = None
        if verify:
            from .verify import paddle_unavailable_reason

            reason = paddle_unavailable_reason()
            if reason:
                note(f"note: {model} is used unverified ({reason})")
        out.parent.mkdir(parents=True, exist_ok=True)
        row = zoo.convert_entry(entry, model_dir, source, out.parent, verify)
        if row["status"] != "ok":
            out.unlink(missing_ok=True)
            raise PtocrError(f"{model}: {row.get('error') or 'conversion failed'}")
        if row.get("max_abs_diff") is not None:
            note(f"ptocr: {model} verified against Paddle (max abs diff "
                 f"{row['max_abs_diff']:.1e}), cached in {out}")
        else:
            note(f"ptocr: {model} cached in {out}")
    return out


def load(model, manifest=None, verify=True, note=_note):
    """The loaded model of a zoo name; an unreadable cached file is fetched again once."""
    from .checkpoint import load_model

    path = ensure(model, manifest, verify, note=note)
    try:
        return load_model(path)
    except PtocrError as exc:
        note(f"note: cached {path} is unusable ({exc}); fetching it again")
        path.unlink(missing_ok=True)
        return load_model(ensure(model, manifest, verify, note=note))


_CONVERTED = {}


def from_paddle(path, rec_dict=None, use_space_char=None, task=None):
    """A Paddle model folder (inference export or training checkpoint) converted in memory
    (architecture detected as `--arch auto` does, among ``task``'s tables when given; no
    parity check), ready for the pipeline."""
    from . import dictionary
    from .convert import convert

    files = sorted(Path(path).iterdir()) if Path(path).is_dir() else [Path(path)]
    key = (str(Path(path).resolve()), str(rec_dict), use_space_char, task,
           tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.is_file()))
    if key in _CONVERTED:  # one conversion per folder and process (models run in eval only)
        return _CONVERTED[key]
    conv = convert(path, "auto", task=task)
    chars = dictionary.resolve(conv.spec, conv.weights,
                               getattr(getattr(conv.model, "head", None), "out_channels", None),
                               rec_dict, use_space_char)
    conv.model.ptocr_meta = {
        "arch": conv.spec.name, "config": conv.config, "source": conv.weights.sources(),
        "parity": {"verified": False, "reason": "converted on the fly"},
        "extra": {"task": conv.spec.task, **(chars or {})}, "processing": conv.processing}
    from ..models.fuse import fuse
    from .checkpoint import channels_last, example_inputs

    # the same fast form as ptocr.load of the converted checkpoint
    _CONVERTED[key] = fuse(conv.model.eval(), example_inputs(conv.model.ptocr_meta),
                           channels_last=channels_last(conv.model))
    return _CONVERTED[key]


def resolve(spec, task, ocr_version=None, lang=None, manifest=None, verify=True, note=_note,
            rec_dict=None, use_space_char=None):
    """A model for a stage: a loaded model passes through; a path is a ptocr checkpoint
    (file) or a Paddle model folder (converted on the fly); None takes the default of
    ``ocr_version``/``lang`` from the cache."""
    from .checkpoint import load_model

    if spec is None:
        return load(default_models(ocr_version, lang)[task], manifest, verify, note)
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    path = Path(spec)
    from . import hf

    if hf.is_folder(path):  # a Hugging Face transformers folder
        return load_model(path)
    if path.is_dir():
        return from_paddle(path, rec_dict, use_space_char, task)
    if not path.exists():
        raise PtocrError(f"{path}: no such file or directory")
    if path.suffix in (".pdparams", ".pdiparams", ".pdmodel", ".json"):
        return from_paddle(path, rec_dict, use_space_char, task)
    from .export import is_artifact, load_artifact

    return load_artifact(path) if is_artifact(path) else load_model(path)


def cached():
    """[(model, path)] of the checkpoints in the cache."""
    folder = home() / "models"
    return sorted((p.stem, p) for p in folder.glob("*.pth")) if folder.is_dir() else []
