"""Inference programs, 2.x ProgramDesc (``.pdmodel``) and 3.x PIR (``.json``), read into one
neutral form: the persistable parameters (name, shape, dtype) and the ops in execution order.

ptocr needs a program for three things: the names and order of the tensors in the
``.pdiparams`` beside it, the order in which ops first use each parameter (to align models
without structured names), and the intermediate variables the verifier can fetch.
"""

import json
from dataclasses import dataclass, field

import numpy as np

from ...errors import FormatError
from .framework_proto import ATTR_FIELD, ProgramDesc
from .tensor_stream import DTYPES

_LOD_TENSOR = 7  # VarType.Type of dense tensors; feed/fetch lists have other types


@dataclass
class Op:
    type: str
    inputs: list  # [(slot name, [value names])] in slot order
    outputs: list
    attrs: dict = field(default_factory=dict)
    sub_ops: list = field(default_factory=list)  # ops of a control-flow body (while, cond)


@dataclass
class Program:
    format: str  # "pdmodel" | "pir"
    params: dict  # name -> (shape tuple, numpy dtype), in file order once known
    ops: list  # [Op], execution order, feed/fetch/data ops excluded
    feeds: list  # input names
    fetches: list  # output value names

    def first_use(self):
        """Parameter names in the order ops first consume them, with the consuming op type.

        An op that only reshapes a parameter (PIR reshapes conv biases before adding them)
        passes it on, so the op type reported is the one that really uses it.
        """
        seen = {}
        alias = {}  # value produced by a pass-through op -> parameter it carries
        for op in _walk(self.ops):
            for slot, names in _slot_order(op):
                for name in names:
                    param = name if name in self.params else alias.get(name)
                    if param is None:
                        continue
                    if op.type in _PASS_THROUGH:
                        for _, outs in op.outputs:
                            for out in outs:
                                alias[out] = param
                        continue
                    seen.setdefault(param, (op.type, slot))
        return seen


def _walk(ops):
    """Ops in execution order, a control-flow op's body (a decoding loop) before the op
    itself, so parameters used inside a loop are ordered as the loop uses them."""
    for op in ops:
        yield from _walk(op.sub_ops)
        yield op


_PASS_THROUGH = {"reshape", "reshape2", "unsqueeze", "unsqueeze2", "squeeze", "squeeze2",
                 "cast", "assign"}

# Operand order of ops whose parameter slots are not stored in the order Paddle's layers
# use them; 2.x stores slots alphabetically, PIR positionally.
_SLOT_ORDER = {"batch_norm": ["X", "Mean", "Variance", "Scale", "Bias"]}


def _slot_order(op):
    order = _SLOT_ORDER.get(op.type)
    if not order:
        return op.inputs
    rank = {name: i for i, name in enumerate(order)}
    return sorted(op.inputs, key=lambda item: rank.get(item[0], len(rank)))


def _attr_value(attr):
    name = ATTR_FIELD.get(attr.type)
    if name is None:
        return None
    value = getattr(attr, name)
    return list(value) if not isinstance(value, (int, float, str, bytes, bool)) else value


def parse_pdmodel(data, what="inference.pdmodel"):
    prog = ProgramDesc()
    try:
        prog.ParseFromString(bytes(data))
    except Exception:
        raise FormatError(f"{what}: not a Paddle program (protobuf parse failed)") from None
    if not prog.blocks:
        raise FormatError(f"{what}: not a Paddle program (no blocks)")
    try:
        return _program_from_block(prog.blocks[0], what, prog.blocks)
    except FormatError:
        raise
    except Exception as exc:  # fields that parse but make no sense (names that are not text...)
        raise FormatError(f"{what}: malformed Paddle program ({type(exc).__name__}: {exc})") from None


def _block_ops(block, blocks, depth=0):
    """The ops of a block, each control-flow op carrying its sub-block's ops."""
    ops = []
    for op in block.ops:
        inputs = [(v.parameter, list(v.arguments)) for v in op.inputs]
        outputs = [(v.parameter, list(v.arguments)) for v in op.outputs]
        attrs = {a.name: _attr_value(a) for a in op.attrs}
        sub = []
        idx = attrs.get("sub_block")
        if isinstance(idx, int) and 0 < idx < len(blocks) and depth < 16:
            sub = _block_ops(blocks[idx], blocks, depth + 1)
        ops.append(Op(op.type, inputs, outputs, attrs, sub))
    return ops


def _program_from_block(block, what, blocks=()):
    params, ops, feeds, fetches = {}, [], [], []
    for var in block.vars:
        if not var.persistable or var.type.type != _LOD_TENSOR:
            continue
        desc = var.type.lod_tensor.tensor
        dtype = DTYPES.get(desc.data_type)
        if dtype is None:
            raise FormatError(f"{what}: variable {var.name} has unsupported type {desc.data_type}")
        params[var.name] = (tuple(desc.dims), np.dtype(np.float32 if dtype == "bfloat16" else dtype))
    for op in _block_ops(block, blocks):
        if op.type == "feed":
            feeds += [n for _, names in op.outputs for n in names]
            continue
        if op.type == "fetch":
            fetches += [n for _, names in op.inputs for n in names]
            continue
        ops.append(op)
    if not feeds or not fetches:
        raise FormatError(f"{what}: program has no feed or fetch ops (not an inference model)")
    # save_combine writes the persistable variables in sorted name order.
    params = dict(sorted(params.items()))
    return Program("pdmodel", params, ops, feeds, fetches)


_PIR_DTYPES = {"0.t_f32": np.float32, "0.t_f64": np.float64, "0.t_f16": np.float16,
               "0.t_i32": np.int32, "0.t_i64": np.int64, "0.t_bf16": np.float32,
               "0.t_i8": np.int8, "0.t_ui8": np.uint8, "0.t_bool": np.bool_}


def _pir_tensor_type(tt):
    data = tt["D"]
    dtype = _PIR_DTYPES.get(data[0]["#"])
    if dtype is None:
        raise FormatError(f"unsupported PIR dtype {data[0]['#']}")
    return tuple(data[1]), np.dtype(dtype)


def parse_pir(data, what="inference.json"):
    try:
        doc = json.loads(data)
        if doc["base_code"]["magic"] != "pir":
            raise ValueError("magic")
        raw_ops = doc["program"]["regions"][0]["blocks"][0]["ops"]
    except Exception:
        raise FormatError(f"{what}: not a Paddle PIR program (JSON with a pir program expected)") from None
    try:
        return _parse_pir_ops(raw_ops)
    except FormatError as exc:
        raise FormatError(f"{what}: {exc}") from None
    except Exception as exc:
        raise FormatError(f"{what}: malformed PIR program ({type(exc).__name__}: {exc})") from None


def _pir_attrs(items):
    out = {}
    for item in items or []:
        value = item["AT"].get("D")
        if isinstance(value, list) and value and isinstance(value[0], dict):
            value = [v.get("D") for v in value]
        out[item["N"]] = value
    return out


def _parse_pir_ops(raw_ops):
    params, feeds, fetches = {}, [], []
    names = {}  # value id -> name, shared with nested regions (a loop body uses outer values)
    ops = _pir_block_ops(raw_ops, params, names, feeds, fetches)
    if not feeds or not fetches:
        raise FormatError("program has no data or fetch ops (not an inference model)")
    params = dict(sorted(params.items()))
    return Program("pir", params, ops, feeds, fetches)


def _pir_block_ops(raw_ops, params, names, feeds, fetches, depth=0):
    ops = []
    for raw in raw_ops:
        kind = raw["#"]
        results = raw.get("O") or []
        if isinstance(results, dict):
            results = [results]
        if kind == "p":  # parameter: A = [.., .., .., name]
            name = raw["A"][3]
            names[results[0]["%"]] = name
            # paddle.nn.LSTM's dropout state is declared as a parameter but never saved
            if not name.endswith("__non_persistable"):
                params[name] = _pir_tensor_type(results[0]["TT"])
            continue
        op_type = kind.split(".", 1)[1]
        for i, res in enumerate(results):
            names.setdefault(res["%"], f"%{res['%']}")
        ins = [names.get(v["%"], f"%{v['%']}") for v in raw.get("I") or [] if "%" in v]
        attrs = _pir_attrs(raw.get("A"))
        if op_type == "data":
            feeds.append(attrs.get("name"))
            names[results[0]["%"]] = attrs.get("name")
            continue
        if op_type == "fetch":
            fetches += ins
            continue
        sub = []
        if depth < 16:  # control flow (while, if): the ops of its regions
            for region in raw.get("regions") or []:
                for block in region.get("blocks") or []:
                    sub += _pir_block_ops(block.get("ops") or [], params, names, feeds,
                                          fetches, depth + 1)
        ops.append(Op(op_type, [(str(i), [n]) for i, n in enumerate(ins)],
                      [(str(i), [names[r["%"]]]) for i, r in enumerate(results)], attrs, sub))
    return ops
