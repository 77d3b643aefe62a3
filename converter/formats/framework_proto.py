"""The few fields of Paddle's framework.proto that ptocr reads, as a schema built at run time.

Paddle 2.x programs (``inference.pdmodel``) and the tensor headers inside ``.pdiparams`` are
protobuf messages. Rather than hand-parse the wire format or ship generated code, we declare
the fields we need (numbers and types from Paddle's framework.proto) and let the protobuf
runtime parse; fields we do not declare are skipped by the parser.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_T = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _T.TYPE_STRING,
    "int32": _T.TYPE_INT32,
    "int64": _T.TYPE_INT64,
    "bool": _T.TYPE_BOOL,
    "float": _T.TYPE_FLOAT,
    "double": _T.TYPE_DOUBLE,
}

# message -> [(field name, number, type, repeated)]; enums are read as int32 (same wire form).
SCHEMA = {
    "Version": [("version", 1, "int64", False)],
    "TensorDesc": [("data_type", 1, "int32", False), ("dims", 2, "int64", True)],
    "LoDTensorDesc": [("tensor", 1, "TensorDesc", False), ("lod_level", 2, "int32", False)],
    "VarType": [
        ("type", 1, "int32", False),
        ("selected_rows", 2, "TensorDesc", False),
        ("lod_tensor", 3, "LoDTensorDesc", False),
    ],
    "VarDesc": [
        ("name", 1, "string", False),
        ("type", 2, "VarType", False),
        ("persistable", 3, "bool", False),
        ("is_parameter", 5, "bool", False),
        ("stop_gradient", 6, "bool", False),
    ],
    "OpVar": [("parameter", 1, "string", False), ("arguments", 2, "string", True)],
    "OpAttr": [
        ("name", 1, "string", False),
        ("type", 2, "int32", False),
        ("i", 3, "int32", False),
        ("f", 4, "float", False),
        ("s", 5, "string", False),
        ("ints", 6, "int32", True),
        ("floats", 7, "float", True),
        ("strings", 8, "string", True),
        ("b", 10, "bool", False),
        ("bools", 11, "bool", True),
        ("block_idx", 12, "int32", False),
        ("l", 13, "int64", False),
        ("longs", 15, "int64", True),
        ("float64s", 16, "double", True),
        ("float64", 19, "double", False),
    ],
    "OpDesc": [
        ("inputs", 1, "OpVar", True),
        ("outputs", 2, "OpVar", True),
        ("type", 3, "string", False),
        ("attrs", 4, "OpAttr", True),
    ],
    "BlockDesc": [
        ("idx", 1, "int32", False),
        ("parent_idx", 2, "int32", False),
        ("vars", 3, "VarDesc", True),
        ("ops", 4, "OpDesc", True),
    ],
    "ProgramDesc": [("blocks", 1, "BlockDesc", True), ("version", 4, "Version", False)],
}

# OpAttr.type (framework.proto AttrType) -> the field that holds the value.
ATTR_FIELD = {
    0: "i", 1: "f", 2: "s", 3: "ints", 4: "floats", 5: "strings", 6: "b", 7: "bools",
    8: "block_idx", 9: "l", 11: "longs", 12: "float64s", 15: "float64",
}

_PACKAGE = "ptocr.paddle_framework"


def _build():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="ptocr_paddle_framework.proto", package=_PACKAGE, syntax="proto2"
    )
    for msg_name, fields in SCHEMA.items():
        msg = fdp.message_type.add(name=msg_name)
        for name, number, ftype, repeated in fields:
            field = msg.field.add(
                name=name,
                number=number,
                label=_T.LABEL_REPEATED if repeated else _T.LABEL_OPTIONAL,
            )
            if ftype in _SCALARS:
                field.type = _SCALARS[ftype]
            else:
                field.type = _T.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{ftype}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in SCHEMA
    }


_CLASSES = _build()
TensorDesc = _CLASSES["TensorDesc"]
ProgramDesc = _CLASSES["ProgramDesc"]
