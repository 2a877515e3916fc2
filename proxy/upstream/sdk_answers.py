"""Gemini's JSON answers read into the SDK's protobuf messages in one constructor call, as json_format would.

The SDK's REST transport parses every answer with json_format.Parse, which walks the message field by field
in Python: about 190 calls for a short answer, more than the rest of the SDK's work on a call. `parse` builds
the same message from the same JSON through the protobuf runtime's keyword constructor (C) instead, for the
answers it can read exactly as json_format does; anything else (a well-known type, a map, bytes, a null, a
number written as a string, an enum name this SDK does not know...) goes to json_format itself, which
then decides, so what is accepted, refused or built never differs (tests/test_sdk_answers.py holds the two
to that)."""
import json

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor

_FLOAT_MAX = 3.4028234663852886e38  # protobuf's type_checkers._FLOAT_MAX: json_format refuses a float past it
_MAX_DEPTH = 90  # json_format refuses past 100 nested messages; well before that, it decides
_INTS = {FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64, FieldDescriptor.CPPTYPE_UINT32,
         FieldDescriptor.CPPTYPE_UINT64}
_FLOATS = {FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE}
# The kinds of field `parse` reads; any other field in an answer sends it to json_format.
_STRING, _INT, _DOUBLE, _FLOAT, _BOOL, _ENUM, _MESSAGE = range(7)


class _Unusual(Exception):
    """The answer holds something only json_format reads exactly: it parses the answer instead."""


def _unique(pairs):
    # As json_format's own loader: a repeated key is a refusal, which json_format words.
    value = {}
    for key, item in pairs:
        if key in value:
            raise _Unusual
        value[key] = item
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_unique)


class _Fields:
    """One message type's fields, keyed by their JSON and proto names, each with what reading it needs."""

    def __init__(self, descriptor):
        self.by_key = {}
        self.oneof_names = {oneof.name for oneof in descriptor.oneofs}
        for field in descriptor.fields:
            spec = self._spec(field)
            for key in {field.json_name, field.name}:
                # json_format counts a oneof's name among the keys it has seen: a key of that name is its to read.
                self.by_key[key] = spec if key not in self.oneof_names else (field.name, None, None, False, None)

    @staticmethod
    def _spec(field):
        oneof = field.containing_oneof.name if field.containing_oneof is not None else None
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
        kind, detail = None, None
        if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
            message = field.message_type
            if not (message.GetOptions().map_entry or message.full_name.startswith("google.protobuf.")):
                kind, detail = _MESSAGE, message
        elif field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
            kind = _STRING if field.type != FieldDescriptor.TYPE_BYTES else None
        elif field.cpp_type in _INTS:
            kind = _INT
        elif field.cpp_type in _FLOATS:
            kind = _FLOAT if field.cpp_type == FieldDescriptor.CPPTYPE_FLOAT else _DOUBLE
        elif field.cpp_type == FieldDescriptor.CPPTYPE_BOOL:
            kind = _BOOL
        elif field.cpp_type == FieldDescriptor.CPPTYPE_ENUM and field.enum_type.full_name != "google.protobuf.NullValue":
            enum = field.enum_type
            numbers = {value.number for value in enum.values}
            kind, detail = _ENUM, ({value.name: value.number for value in enum.values}, numbers, enum.is_closed)
        return field.name, kind, detail, repeated, oneof


_TABLES = {}


def _fields(descriptor):
    table = _TABLES.get(descriptor.full_name)
    if table is None:
        table = _TABLES[descriptor.full_name] = _Fields(descriptor)
    return table


def _scalar(kind, detail, value):
    """The value json_format would set, or _Unusual where it would do anything but set it as it is."""
    cls = type(value)
    if kind == _STRING and cls is str:
        return value  # a lone surrogate the constructor refuses (UnicodeEncodeError), and json_format decides
    if kind == _INT and cls is int:
        return value  # one out of the field's range the constructor refuses (ValueError)
    if kind in (_DOUBLE, _FLOAT) and (cls is float or cls is int):
        value = float(value)
        if value - value == 0.0 and (kind == _DOUBLE or -_FLOAT_MAX <= value <= _FLOAT_MAX):  # finite, and fits
            return value
    elif kind == _BOOL and cls is bool:
        return value
    elif kind == _ENUM:
        names, numbers, closed = detail
        if cls is str and value in names:
            return names[value]
        if cls is int and (value in numbers or not closed):
            return value
    raise _Unusual


def _keywords(js, descriptor, depth):
    if depth > _MAX_DEPTH:
        raise _Unusual
    table = _fields(descriptor)
    keywords, oneofs = {}, set()
    for key, value in js.items():
        spec = table.by_key.get(key)
        if spec is None:
            if key.startswith("[") or key in table.oneof_names:  # an extension, or a key json_format confuses
                raise _Unusual
            continue  # an unknown field: the transport asks json_format to ignore those
        name, kind, detail, repeated, oneof = spec
        if kind is None or value is None or name in keywords:
            raise _Unusual
        if oneof is not None:
            if oneof in oneofs:
                raise _Unusual
            oneofs.add(oneof)
        if repeated:
            if type(value) is not list:
                raise _Unusual
            if kind == _MESSAGE:
                keywords[name] = [_message(item, detail, depth) for item in value]
            else:
                keywords[name] = [_scalar(kind, detail, item) for item in value]
        elif kind == _MESSAGE:
            keywords[name] = _message(value, detail, depth)
        else:
            keywords[name] = _scalar(kind, detail, value)
    return keywords


def _message(value, descriptor, depth):
    if type(value) is not dict:
        raise _Unusual
    return _keywords(value, descriptor, depth + 1)


def parse(text, message, ignore_unknown_fields=False, descriptor_pool=None, max_recursion_depth=100):
    """json_format.Parse, for the SDK's transport (which always ignores unknown fields)."""
    if ignore_unknown_fields and descriptor_pool is None and max_recursion_depth == 100 and not message.ListFields():
        try:
            js = _DECODER.decode(text if isinstance(text, str) else text.decode("utf-8"))
            if type(js) is dict:
                built = type(message)(**_keywords(js, message.DESCRIPTOR, 1))
                message.MergeFrom(built)
                return message
        except Exception:  # _Unusual, or what the constructor refuses: json_format decides, and words it
            pass
    return json_format.Parse(text, message, ignore_unknown_fields, descriptor_pool, max_recursion_depth)


class JsonFormat:
    """google.protobuf.json_format as the SDK's REST transport sees it: the same module, but `parse` for Parse."""

    Parse = staticmethod(parse)

    def __getattr__(self, name):
        return getattr(json_format, name)
