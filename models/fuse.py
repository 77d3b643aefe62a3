"""The fast eval form of a model: rep blocks in deploy form and every conv+BN pair folded.

One generic pass over the module tree, no per-model code. Which BN follows which conv is a
fact of the forward code, not of the module tree (a block may apply its ``bn`` before its
``conv``, or use a conv's output twice), so it is observed: the model runs once on an example
input under a TorchFunctionMode that counts every torch call consuming each conv's output. A
BN is folded into a conv only when the BN's input is that conv's output and nothing else
reads it (and both run exactly once). A block that declares ``conv_affine()`` -> (scale,
shift), a per-channel or scalar affine map (PPLCNetV3's LearnableAffineBlock after each rep
layer's conv), folds the same way. Folding is computed in float64 from the float32
parameters and cast back, so the fused float32 weights are the float64 fold rounded once.

The module tree and ``state_dict()`` stay those of the checkpoint: a folded conv keeps its
parameters and computes with folded non-persistent buffers, its BN becomes the identity
(both by a class swap to the Folded subclasses below), and an edit of any of their tensors
refolds before the next forward. Rep blocks, by contrast, are turned into their deploy form
(``reparameterize()``: the structure of the official inference exports).

``fuse(model, example)`` works in place and returns the model (eval mode, for inference:
gradients do not reach the BN parameters of a folded pair; ``ptocr.load(path, fuse=False)``
is the form to train).
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
         nn.ConvTranspose3d)
TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
# calls that read a tensor's metadata, not its values
_METADATA = {"__get__", "size", "dim", "numel", "stride", "is_contiguous", "data_ptr",
             "element_size", "__len__", "ndimension", "nelement", "get_device",
             "storage_offset", "is_floating_point", "is_complex"}


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class _CountUses(TorchFunctionMode):
    """Counts, per watched tensor (by identity), the torch calls that read its values."""

    def __init__(self):
        super().__init__()
        self.watched = {}  # id -> tensor (kept alive so ids stay unique)
        self.uses = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") not in _METADATA:
            for t in _tensors((args, kwargs)):
                if id(t) in self.watched:
                    self.uses[id(t)] = self.uses.get(id(t), 0) + 1
        return func(*args, **kwargs)


def conv_bn_pairs(model, example):
    """[(conv name, bn name)] of BNs that read a conv's output and are its only reader."""
    modules = dict(model.named_modules())
    calls, conv_out, bn_in = {}, {}, {}
    counter = _CountUses()

    def conv_hook(name):
        def hook(_m, _inputs, output):
            calls[name] = calls.get(name, 0) + 1
            if isinstance(output, torch.Tensor):
                conv_out[name] = output
                counter.watched[id(output)] = output
        return hook

    def bn_hook(name):
        def hook(_m, inputs):
            calls[name] = calls.get(name, 0) + 1
            bn_in[name] = inputs[0] if inputs else None
        return hook

    hooks = []
    for name, m in modules.items():
        if isinstance(m, CONVS):
            hooks.append(m.register_forward_hook(conv_hook(name)))
        elif _is_follower(m):
            hooks.append(m.register_forward_pre_hook(bn_hook(name)))
    try:
        with torch.inference_mode(), counter:
            out = model(*example)
    finally:
        for h in hooks:
            h.remove()
    returned = {id(t) for t in _tensors(out)}
    by_id = {id(t): name for name, t in conv_out.items()}
    pairs = []
    for bn, x in bn_in.items():
        conv = by_id.get(id(x)) if x is not None else None
        if (conv is None or calls.get(conv) != 1 or calls.get(bn) != 1
                or counter.uses.get(id(x)) != 1 or id(x) in returned):
            continue
        if _foldable(modules[conv], modules[bn]):
            pairs.append((conv, bn))
    return pairs


def _is_follower(m):
    """A module a conv's output can fold into: BN, or a block declaring ``conv_affine()``
    (a per-channel or scalar y = scale * x + shift, e.g. PPLCNetV3's LearnableAffineBlock).
    ``conv_affine()`` returns the block's own tensors, not values computed from them: their
    version counters are how an edit is seen (refold)."""
    return isinstance(m, nn.modules.batchnorm._BatchNorm) or _is_affine(m)


def _is_affine(m):
    return callable(getattr(type(m), "conv_affine", None))


def _foldable(conv, bn):
    if type(conv) not in FOLDED or not (type(bn) in FOLDED or _is_affine(bn)):
        return False  # exact classes only
    if isinstance(conv, TRANSPOSED) and conv.groups != 1:
        return False
    if _is_affine(bn):
        return all(t.numel() in (1, conv.out_channels) for t in bn.conv_affine())
    if bn.running_mean is None or bn.running_var is None:
        return False
    return conv.out_channels == bn.num_features


def _fold_tensors(conv, bn):
    """(weight, bias) of conv followed by bn in eval mode, computed in float64, returned in the
    conv weight's dtype and memory format."""
    w = conv.weight.detach()
    if _is_affine(bn):
        n = conv.out_channels
        scale, shift = (t.detach().double().reshape(-1).expand(n) for t in bn.conv_affine())
    else:
        eps = float(torch.tensor(bn.eps, dtype=bn.running_var.dtype))  # as BN's kernel sees it
        scale = torch.rsqrt(bn.running_var.detach().double() + eps)
        if bn.weight is not None:
            scale = scale * bn.weight.detach().double()
        shift = -bn.running_mean.detach().double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.detach().double()
    shape = [1, -1] if isinstance(conv, TRANSPOSED) else [-1, 1]
    fused = w.double() * scale.reshape(shape + [1] * (w.dim() - 2))
    bias = shift if conv.bias is None else conv.bias.detach().double() * scale + shift
    fmt = (torch.channels_last if w.dim() == 4 and not w.is_contiguous()
           and w.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)
    return fused.to(w.dtype).contiguous(memory_format=fmt), bias.to(w.dtype)


def _stamp(tensors):
    return tuple((t._version, t.data_ptr(), t.dtype) if t is not None else None
                 for t in tensors)


class _Folded:
    """Mixin of a conv whose following BN is folded into it. The conv keeps its own
    parameters (so ``state_dict()`` is the checkpoint's, keys and values); the folded weight
    and bias are non-persistent buffers. Any change to the conv's or the BN's tensors (an
    in-place edit, ``load_state_dict``, ``.double()``, ``.to(...)``) is seen by their version
    counters and the fold is recomputed before the next forward."""

    def _sources(self):
        bn = self.__dict__["_folded_bn"]
        if _is_affine(bn):
            return (self.weight, self.bias, *bn.conv_affine())
        return (self.weight, self.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var)

    @torch.no_grad()
    def refold(self):
        weight, bias = _fold_tensors(self, self.__dict__["_folded_bn"])
        self._buffers["fused_weight"], self._buffers["fused_bias"] = weight, bias
        self._non_persistent_buffers_set.update(("fused_weight", "fused_bias"))
        self.__dict__["_fold_stamp"] = _stamp(self._sources())

    def _fused(self):
        if not (torch.compiler.is_compiling() or torch.jit.is_tracing()) and \
                self.__dict__.get("_fold_stamp") != _stamp(self._sources()):
            self.refold()
        return self.fused_weight, self.fused_bias


class FoldedConv1d(_Folded, nn.Conv1d):
    def forward(self, x):
        return self._conv_forward(x, *self._fused())


class FoldedConv2d(_Folded, nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, *self._fused())


class FoldedConv3d(_Folded, nn.Conv3d):
    def forward(self, x):
        return self._conv_forward(x, *self._fused())


class FoldedConvTranspose1d(_Folded, nn.ConvTranspose1d):
    def forward(self, x):
        w, b = self._fused()
        return F.conv_transpose1d(x, w, b, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class FoldedConvTranspose2d(_Folded, nn.ConvTranspose2d):
    def forward(self, x):
        w, b = self._fused()
        return F.conv_transpose2d(x, w, b, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class FoldedConvTranspose3d(_Folded, nn.ConvTranspose3d):
    def forward(self, x):
        w, b = self._fused()
        return F.conv_transpose3d(x, w, b, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


class _FoldedBN:
    """A BN whose affine map lives in the conv before it: the identity. Its parameters and
    statistics stay (the conv folds them in; state_dict() is unchanged)."""

    def forward(self, x):
        return x


class FoldedBatchNorm1d(_FoldedBN, nn.BatchNorm1d):
    pass


class FoldedBatchNorm2d(_FoldedBN, nn.BatchNorm2d):
    pass


class FoldedBatchNorm3d(_FoldedBN, nn.BatchNorm3d):
    pass


FOLDED = {nn.Conv1d: FoldedConv1d, nn.Conv2d: FoldedConv2d, nn.Conv3d: FoldedConv3d,
          nn.ConvTranspose1d: FoldedConvTranspose1d, nn.ConvTranspose2d: FoldedConvTranspose2d,
          nn.ConvTranspose3d: FoldedConvTranspose3d, nn.BatchNorm1d: FoldedBatchNorm1d,
          nn.BatchNorm2d: FoldedBatchNorm2d, nn.BatchNorm3d: FoldedBatchNorm3d}


def _identity_class(cls):
    """The Folded subclass of a follower class: BN's above, made once for an affine block."""
    if cls not in FOLDED:
        name = f"Folded{cls.__name__}"
        made = type(name, (_FoldedBN, cls), {"__module__": __name__, "__qualname__": name})
        globals()[name] = FOLDED[cls] = made  # importable by name: the model pickles
    return FOLDED[cls]


def fold(conv, bn):
    """Make ``conv`` compute conv+bn and ``bn`` the identity (in place; classes swapped to
    their Folded subclasses, parameters untouched). ``bn``: a BN or an affine block."""
    conv.__class__ = FOLDED[type(conv)]
    bn.__class__ = _identity_class(type(bn))
    conv.__dict__["_folded_bn"] = bn  # a reference, not a submodule
    conv.refold()


@torch.no_grad()
def reparameterize(model):
    """Every block with a ``reparameterize()`` (rep layers) in deploy form, fused in float64."""
    count = 0
    for name, module in list(model.named_modules()):
        if module is model or not hasattr(module, "reparameterize"):
            continue
        if not _attached(model, name):
            continue  # inside a block already reparameterized
        dtype = next(module.parameters(), torch.zeros(())).dtype
        module.double()
        module.reparameterize()
        module.to(dtype)
        count += 1
    return count


def _attached(model, name):
    try:
        model.get_submodule(name)
        return True
    except AttributeError:
        return False


def fuse(model, example=None, channels_last=False):
    """The fast eval form, in place: rep blocks reparameterized, conv+BN pairs (and conv +
    affine blocks, ``conv_affine()``: info['affine_folded']) folded (found
    by running ``example``, a tuple of inputs), optionally channels_last weights. Returns the
    model with ``model.ptocr_fused`` = {'rep_blocks', 'folded', 'channels_last'[, 'note']}."""
    model.eval()
    info = {"rep_blocks": reparameterize(model), "folded": 0,
            "channels_last": bool(channels_last)}
    if example is not None:
        try:
            pairs = conv_bn_pairs(model, example)
        except Exception as exc:  # a model the example cannot run: keep it unfolded
            info["note"] = f"conv+BN folding skipped: {type(exc).__name__}: {exc}"[:200]
            pairs = []
        for conv, bn in pairs:
            fold(model.get_submodule(conv), model.get_submodule(bn))
        affine = sum(_is_affine(model.get_submodule(bn)) for _, bn in pairs)
        info["folded"] = len(pairs) - affine
        if affine:
            info["affine_folded"] = affine
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.ptocr_fused = info
    return model


def unfused_copy(model):
    """A deep copy in which the folded pairs compute as plain conv and BN again."""
    import copy

    model = copy.deepcopy(model)
    plain = {v: k for k, v in FOLDED.items()}
    for m in model.modules():
        if type(m) in plain:
            m.__class__ = plain[type(m)]
            for key in ("_folded_bn", "_fold_stamp"):
                m.__dict__.pop(key, None)
            for key in ("fused_weight", "fused_bias"):
                m._buffers.pop(key, None)
                m._non_persistent_buffers_set.discard(key)
    return model
