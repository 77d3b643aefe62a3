"""PaddleNLP's own LayoutLM / LayoutLMv2 / LayoutXLM modeling code as a test reference: the
`paddlenlp==2.8.1` wheel from PyPI, installed with --no-deps by `make install` (test extra).

SHIM, said plainly: paddlenlp 2.8.1's top-level import does not work here (its package
__init__ files import huggingface_hub, datasets, its quantization and generation stacks, ...,
none of which the modeling files use). So, as tests/ppocr_ref.py does for PaddleOCR's wheel,
the modeling and configuration modules are loaded from their files with their parent packages
stood in by empty namespaces, and the three names they import from those packages are given
small stand-ins:

  * ``paddlenlp.transformers.PretrainedModel``: a ``paddle.nn.Layer`` that keeps ``config``
    and, as the real one does after each ``__init__``, applies the model's ``_init_weights``
    hook to every sublayer once (the real one adds from_pretrained/save_pretrained/generation;
    no layer, parameter or forward of its own);
  * ``paddlenlp.transformers.register_base_model``: the real decorator's one line;
  * ``paddlenlp.transformers.configuration_utils.PretrainedConfig``: attribute storage with
    the real class's ``attribute_map`` aliasing (``num_classes`` -> ``num_labels``) and its
    ``num_labels`` default (2);
  * ``paddlenlp.utils.log.logger`` / ``paddlenlp.utils.env.CONFIG_NAME``: a logging logger /
    the constant.

Every layer, parameter name and forward is the wheel's own code, with one source fix: 2.8.1's
relation-extraction decoder (``REDecoder.build_relation``) tests ``paddle.any(...) is False`` /
``is True`` (always a Python bool, so it raises on ``.sum()``: RE cannot run at all in 2.8.1);
paddlenlp 2.5.2, the version PaddleOCR's KIE requirements pin, has ``== False`` / ``== True``
there, which is what is loaded (``_SOURCE_FIXES``)."""

# (module, text in paddlenlp 2.8.1, text of paddlenlp 2.5.2)
_SOURCE_FIXES = {
    "paddlenlp.transformers.layoutxlm.modeling": [
        ("negative_mask = paddle.any(mask, axis=1) is False",
         "negative_mask = paddle.any(mask, axis=1) == False"),  # noqa: E712
        ("positive_mask = paddle.any(mask, axis=0) is True",
         "positive_mask = paddle.any(mask, axis=0) == True"),
    ],
}

import importlib.util
import logging
import os
import sys
import tempfile
import types
from pathlib import Path

import pytest


_ROOT = []


def wheel_root():
    if _ROOT:
        return _ROOT[0]
    spec = importlib.util.find_spec("paddlenlp")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("the paddlenlp==2.8.1 wheel (test reference) is not installed; "
                    "run `make install`")
    _ROOT.append(Path(list(spec.submodule_search_locations)[0]))
    return _ROOT[0]


def _package(name, path=None):
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__path__ = [str(path)] if path else []
        sys.modules[name] = module
    return sys.modules[name]


def _install_stand_ins():
    import paddle

    if getattr(sys.modules.get("paddlenlp"), "_ptocr_shim", False):
        return
    root = wheel_root()
    top = _package("paddlenlp", root)
    top._ptocr_shim = True
    utils = _package("paddlenlp.utils", root / "utils")
    log = types.ModuleType("paddlenlp.utils.log")
    log.logger = logging.getLogger("paddlenlp")
    sys.modules["paddlenlp.utils.log"] = utils.log = log
    env = types.ModuleType("paddlenlp.utils.env")
    env.CONFIG_NAME = "model_config.json"
    sys.modules["paddlenlp.utils.env"] = utils.env = env

    class PretrainedConfig:
        attribute_map = {}

        def __init__(self, **kwargs):
            kwargs = {self.attribute_map.get(k, k): v for k, v in kwargs.items()}
            kwargs.setdefault("num_labels", 2)
            for key, value in kwargs.items():
                setattr(self, key, value)

        def __setattr__(self, key, value):
            super().__setattr__(type(self).attribute_map.get(key, key), value)

        def __getattr__(self, key):
            alias = type(self).attribute_map.get(key)
            if alias is None:
                raise AttributeError(key)
            return getattr(self, alias)

    class PretrainedModel(paddle.nn.Layer):
        def __init__(self, config, *args, **kwargs):
            super().__init__()
            self.config = config

        def __init_subclass__(cls, **kwargs):
            # the real base class (model_utils' InitTrackerMeta + _post_init) runs the model's
            # _init_weights hook over every sublayer after each __init__; LayoutLM's hook sets
            # every LayerNorm's epsilon to 1e-12 there, which the exported program keeps
            super().__init_subclass__(**kwargs)
            if "__init__" not in cls.__dict__:
                return
            original = cls.__init__

            def __init__(self, *args, **kw):
                original(self, *args, **kw)
                self.apply(self._initialize_weights)
            cls.__init__ = __init__

        def _init_weights(self, layer):
            pass

        def _initialize_weights(self, layer):
            if getattr(layer, "_is_initialized", False):
                return
            self._init_weights(layer)
            layer._is_initialized = True

    def register_base_model(cls):
        cls.__bases__[0].base_model_class = cls
        return cls

    tr = _package("paddlenlp.transformers", root / "transformers")
    tr.PretrainedModel = PretrainedModel
    tr.register_base_model = register_base_model
    cu = types.ModuleType("paddlenlp.transformers.configuration_utils")
    cu.PretrainedConfig = PretrainedConfig
    sys.modules["paddlenlp.transformers.configuration_utils"] = tr.configuration_utils = cu


def paddlenlp_module(dotted):
    """e.g. paddlenlp_module('paddlenlp.transformers.layoutxlm.modeling'), from the wheel."""
    _install_stand_ins()
    if dotted in sys.modules:
        return sys.modules[dotted]
    root = wheel_root()
    parts = dotted.split(".")
    for i in range(2, len(parts)):
        _package(".".join(parts[:i]), root.joinpath(*parts[1:i]))
    path = root.joinpath(*parts[1:-1], parts[-1] + ".py")
    if dotted in _SOURCE_FIXES:
        # dy2static (paddle.jit.save) reads each forward's source from its file, so the fixed
        # source is a file of its own
        source = path.read_text(encoding="utf-8")
        for old, new in _SOURCE_FIXES[dotted]:
            assert source.count(old) == 1, (dotted, old)
            source = source.replace(old, new)
        fixed = Path(tempfile.gettempdir()) / "ptocr-paddlenlp-ref" / f"{dotted}.py"
        fixed.parent.mkdir(parents=True, exist_ok=True)
        if not fixed.exists() or fixed.read_text(encoding="utf-8") != source:
            tmp = fixed.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(source, encoding="utf-8")
            os.replace(tmp, fixed)
        path = fixed
    spec = importlib.util.spec_from_file_location(dotted, path,
                                                  submodule_search_locations=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = dotted.rpartition(".")[0]
    sys.modules[dotted] = module
    spec.loader.exec_module(module)
    return module


def layoutxlm(small=True, **overrides):
    """(modeling module, LayoutXLMConfig) for a small configuration."""
    conf = paddlenlp_module("paddlenlp.transformers.layoutxlm.configuration")
    modeling = paddlenlp_module("paddlenlp.transformers.layoutxlm.modeling")
    kwargs = dict(conf.LAYOUTXLM_PRETRAINED_INIT_CONFIGURATION["vi-layoutxlm-base-uncased"])
    if small:
        kwargs.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, vocab_size=120, coordinate_size=8, shape_size=8,
                      max_position_embeddings=514)
    kwargs.update(overrides)
    return modeling, conf.LayoutXLMConfig(**kwargs)


def layoutxlm_tokenizer(vocab_file):
    """PaddleNLP's LayoutXLMTokenizer (layoutxlm/tokenizer.py, the wheel's own code: its
    sentencepiece model, the XLM-R id layout, special tokens) on a stand-in for its generic
    base class PretrainedTokenizer (tokenizer_utils pulls in jinja2, aistudio_sdk and
    huggingface_hub): ``tokenize`` is the class's ``_tokenize``, ``encode`` wraps the ids with
    the class's ``build_inputs_with_special_tokens`` — what PaddleNLP's base does for plain
    text without added tokens."""
    _install_stand_ins()
    tr = sys.modules["paddlenlp.transformers"]
    if not hasattr(tr, "PretrainedTokenizer"):
        class AddedToken(str):
            def __new__(cls, content, **_):
                return super().__new__(cls, content)

        class PretrainedTokenizer:
            padding_side = "right"
            pad_token_type_id = 0

            def __init__(self, **kwargs):
                pass

            def __getattr__(self, name):
                if name.endswith("_token_id"):
                    return self._convert_token_to_id(str(getattr(self, "_" + name[:-3])))
                raise AttributeError(name)

            def tokenize(self, text):
                return self._tokenize(text)

            def encode(self, text, **_):
                ids = [self._convert_token_to_id(t) for t in self.tokenize(text)]
                ids = self.build_inputs_with_special_tokens(ids)
                return {"input_ids": ids, "token_type_ids": [0] * len(ids),
                        "attention_mask": [1] * len(ids)}

        tu = types.ModuleType("paddlenlp.transformers.tokenizer_utils")
        for name in ("_is_control", "_is_punctuation", "_is_whitespace"):
            setattr(tu, name, lambda ch: False)  # used only by helpers LayoutXLM does not call
        sys.modules["paddlenlp.transformers.tokenizer_utils"] = tr.tokenizer_utils = tu
        tr.AddedToken, tr.PretrainedTokenizer = AddedToken, PretrainedTokenizer
    module = paddlenlp_module("paddlenlp.transformers.layoutxlm.tokenizer")
    return module.LayoutXLMTokenizer(vocab_file=str(vocab_file))


# A small visual backbone for tests: PaddleNLP's VisualBackbone reads its size from the
# wheel's visual_backbone.yaml through yacs (``read_config``), which is not installed here.
# SHIM, said plainly: ``read_config`` (imported by name into layoutxlm/modeling.py and
# layoutlmv2/modeling.py) is replaced by one that reads the same yaml with PyYAML into
# attribute dicts and overrides the keys given (the real one returns a frozen yacs CfgNode of
# the file; the network is built by the wheel's own build_resnet_fpn_backbone from it).
SMALL_VISUAL = {"MODEL.RESNETS.DEPTH": 50, "MODEL.RESNETS.NUM_GROUPS": 2,
                "MODEL.RESNETS.WIDTH_PER_GROUP": 4, "MODEL.RESNETS.STEM_OUT_CHANNELS": 8,
                "MODEL.RESNETS.RES2_OUT_CHANNELS": 16, "MODEL.FPN.OUT_CHANNELS": 16}


class _AttrDict(dict):
    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def _attr(node):
    if isinstance(node, dict):
        return _AttrDict({k: _attr(v) for k, v in node.items()})
    return node


def visual_config(overrides=None):
    """The wheel's visual_backbone.yaml (with dotted-key overrides) as PaddleNLP reads it."""
    import yaml

    path = wheel_root() / "transformers" / "layoutxlm" / "visual_backbone.yaml"
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in (overrides or {}).items():
        node = cfg
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        assert last in node, dotted
        node[last] = value
    return _attr(cfg)


def use_visual_config(overrides=None):
    """Make PaddleNLP's LayoutXLM and LayoutLMv2 build their visual backbones from
    visual_config(overrides)."""
    for name in ("paddlenlp.transformers.layoutxlm.modeling",
                 "paddlenlp.transformers.layoutlmv2.modeling"):
        paddlenlp_module(name).read_config = lambda fp=None: visual_config(overrides)


def layoutlmv2(small=True, **overrides):
    """(modeling module, LayoutLMv2Config) for a small configuration."""
    _install_stand_ins()
    conf = paddlenlp_module("paddlenlp.transformers.layoutlmv2.configuration")
    modeling = paddlenlp_module("paddlenlp.transformers.layoutlmv2.modeling")
    kwargs = dict(conf.LAYOUTLMV2_PRETRAINED_INIT_CONFIGURATION["layoutlmv2-base-uncased"])
    if small:
        kwargs.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, vocab_size=120, coordinate_size=8, shape_size=8)
    kwargs.update(overrides)
    return modeling, conf.LayoutLMv2Config(**kwargs)


def layoutlm(small=True, **overrides):
    """(modeling module, LayoutLMConfig) for a small configuration."""
    _install_stand_ins()
    tr = sys.modules["paddlenlp.transformers"]
    if not hasattr(sys.modules.get("paddlenlp.layers"), "Linear"):
        # modeling.py imports paddlenlp.layers.Linear (used only by its masked-LM head); the
        # package's __init__ pulls in CRF and TCN layers: the one module it needs is loaded
        layers = _package("paddlenlp.layers", wheel_root() / "layers")
        layers.Linear = paddlenlp_module("paddlenlp.layers.linear").Linear
    del tr
    conf = paddlenlp_module("paddlenlp.transformers.layoutlm.configuration")
    modeling = paddlenlp_module("paddlenlp.transformers.layoutlm.modeling")
    kwargs = dict(conf.LAYOUTLM_PRETRAINED_INIT_CONFIGURATION["layoutlm-base-uncased"])
    if small:
        kwargs.update(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, vocab_size=120)
    kwargs.update(overrides)
    return modeling, conf.LayoutLMConfig(**kwargs)
