"""The Sparkplug B protobuf schema (``sparkplug_b.proto`` beside this file), built at run time.

The descriptors are built from :data:`SCHEMA`, a transcription of ``sparkplug_b.proto``
(Eclipse Sparkplug Specification 3.0.0, chapter 6.4): no generated ``_pb2`` module, no protoc
at build time. ``tests/unit/test_decoders_sparkplug.py`` checks that the table and the
``.proto`` file agree field by field. Only :func:`payload_class` is used outside this module.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE: Final = "org.eclipse.tahu.protobuf"
FILE_NAME: Final = "nzc/sparkplug_b.proto"
MAX_FIELD: Final = 536_870_912  # exclusive end of "extensions N to max" (2^29)

# message path -> (fields, oneof names, first extension number or None)
# field: (label, type, name, number, oneof name or None)
Field = tuple[str, str, str, int, str | None]
_O, _R = "optional", "repeated"


def _value_oneof(*fields: tuple[str, str, int]) -> list[Field]:
    return [(_O, t, n, num, "value") for t, n, num in fields]


SCHEMA: Final[dict[str, tuple[list[Field], int | None]]] = {
    "Payload": ([
        (_O, "uint64", "timestamp", 1, None), (_R, "Metric", "metrics", 2, None),
        (_O, "uint64", "seq", 3, None), (_O, "string", "uuid", 4, None),
        (_O, "bytes", "body", 5, None),
    ], 6),
    "Payload.Template": ([
        (_O, "string", "version", 1, None), (_R, "Metric", "metrics", 2, None),
        (_R, "Template.Parameter", "parameters", 3, None),
        (_O, "string", "template_ref", 4, None), (_O, "bool", "is_definition", 5, None),
    ], 6),
    "Payload.Template.Parameter": ([
        (_O, "string", "name", 1, None), (_O, "uint32", "type", 2, None),
        *_value_oneof(("uint32", "int_value", 3), ("uint64", "long_value", 4),
                      ("float", "float_value", 5), ("double", "double_value", 6),
                      ("bool", "boolean_value", 7), ("string", "string_value", 8),
                      ("Template.Parameter.ParameterValueExtension", "extension_value", 9)),
    ], None),
    "Payload.Template.Parameter.ParameterValueExtension": ([], 1),
    "Payload.DataSet": ([
        (_O, "uint64", "num_of_columns", 1, None), (_R, "string", "columns", 2, None),
        (_R, "uint32", "types", 3, None), (_R, "DataSet.Row", "rows", 4, None),
    ], 5),
    "Payload.DataSet.DataSetValue": (_value_oneof(
        ("uint32", "int_value", 1), ("uint64", "long_value", 2), ("float", "float_value", 3),
        ("double", "double_value", 4), ("bool", "boolean_value", 5),
        ("string", "string_value", 6),
        ("DataSet.DataSetValue.DataSetValueExtension", "extension_value", 7)), None),
    "Payload.DataSet.DataSetValue.DataSetValueExtension": ([], 1),
    "Payload.DataSet.Row": ([(_R, "DataSet.DataSetValue", "elements", 1, None)], 2),
    "Payload.PropertyValue": ([
        (_O, "uint32", "type", 1, None), (_O, "bool", "is_null", 2, None),
        *_value_oneof(("uint32", "int_value", 3), ("uint64", "long_value", 4),
                      ("float", "float_value", 5), ("double", "double_value", 6),
                      ("bool", "boolean_value", 7), ("string", "string_value", 8),
                      ("PropertySet", "propertyset_value", 9),
                      ("PropertySetList", "propertysets_value", 10),
                      ("PropertyValue.PropertyValueExtension", "extension_value", 11)),
    ], None),
    "Payload.PropertyValue.PropertyValueExtension": ([], 1),
    "Payload.PropertySet": ([
        (_R, "string", "keys", 1, None), (_R, "PropertyValue", "values", 2, None),
    ], 3),
    "Payload.PropertySetList": ([(_R, "PropertySet", "propertyset", 1, None)], 2),
    "Payload.MetaData": ([
        (_O, "bool", "is_multi_part", 1, None), (_O, "string", "content_type", 2, None),
        (_O, "uint64", "size", 3, None), (_O, "uint64", "seq", 4, None),
        (_O, "string", "file_name", 5, None), (_O, "string", "file_type", 6, None),
        (_O, "string", "md5", 7, None), (_O, "string", "description", 8, None),
    ], 9),
    "Payload.Metric": ([
        (_O, "string", "name", 1, None), (_O, "uint64", "alias", 2, None),
        (_O, "uint64", "timestamp", 3, None), (_O, "uint32", "datatype", 4, None),
        (_O, "bool", "is_historical", 5, None), (_O, "bool", "is_transient", 6, None),
        (_O, "bool", "is_null", 7, None), (_O, "MetaData", "metadata", 8, None),
        (_O, "PropertySet", "properties", 9, None),
        *_value_oneof(("uint32", "int_value", 10), ("uint64", "long_value", 11),
                      ("float", "float_value", 12), ("double", "double_value", 13),
                      ("bool", "boolean_value", 14), ("string", "string_value", 15),
                      ("bytes", "bytes_value", 16), ("DataSet", "dataset_value", 17),
                      ("Template", "template_value", 18),
                      ("Metric.MetricValueExtension", "extension_value", 19)),
    ], None),
    "Payload.Metric.MetricValueExtension": ([], 1),
}

_F = descriptor_pb2.FieldDescriptorProto
SCALAR_TYPES: Final[dict[str, int]] = {
    "uint32": _F.TYPE_UINT32, "uint64": _F.TYPE_UINT64, "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE, "bool": _F.TYPE_BOOL, "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
}
LABELS: Final[dict[str, int]] = {"optional": _F.LABEL_OPTIONAL, "repeated": _F.LABEL_REPEATED}


def _build_file() -> Any:
    fdp = descriptor_pb2.FileDescriptorProto(name=FILE_NAME, package=PACKAGE, syntax="proto2")
    protos: dict[str, Any] = {}
    for path in SCHEMA:  # parents come before their nested messages in SCHEMA
        parent, _, name = path.rpartition(".")
        container = protos[parent].nested_type if parent else fdp.message_type
        protos[path] = container.add(name=name)
    for path, (fields, ext_start) in SCHEMA.items():
        msg = protos[path]
        oneofs: list[str] = []
        for label, ftype, name, number, oneof in fields:
            f = msg.field.add(name=name, number=number, label=LABELS[label])
            if ftype in SCALAR_TYPES:
                f.type = SCALAR_TYPES[ftype]
            else:
                f.type = _F.TYPE_MESSAGE
                f.type_name = f".{PACKAGE}.Payload.{ftype}"
            if oneof is not None:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    msg.oneof_decl.add(name=oneof)
                f.oneof_index = oneofs.index(oneof)
        if ext_start is not None:
            msg.extension_range.add(start=ext_start, end=MAX_FIELD)
    return fdp


@cache
def payload_class() -> Any:
    """The message class of ``org.eclipse.tahu.protobuf.Payload`` (built once, in a private
    descriptor pool so that nothing else in the process can clash with it)."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_build_file())
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))
