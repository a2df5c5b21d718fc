"""Request parameters: Stripe's form encoding and the parameters each endpoint accepts.

stripe-python ships a TypedDict per API call (`stripe.params.InvoiceCreateParams`, …),
generated from Stripe's OpenAPI spec for the pinned API version. The emulator compiles
those TypedDicts at import time into validators, so it accepts exactly the parameters
Stripe accepts (nested ones included), rejects unknown ones with Stripe's
`parameter_unknown` error, and coerces form strings into ints, booleans and decimals.
"""

from __future__ import annotations

import re
import sys
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import typing_extensions
from stripe._request_options import RequestOptions

from stripe_emulator.errors import StripeError, invalid, missing_param
from stripe_emulator.money import check_currency

# Keys of stripe-python's RequestOptions are client options, not API parameters.
_CLIENT_OPTIONS = frozenset(RequestOptions.__annotations__)

_KEY_RE = re.compile(r"\[([^\]]*)\]")


# --- Form decoding --------------------------------------------------------------------


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`a[b][0][c]=v` pairs → nested dicts. Lists stay dicts keyed "0", "1", … until
    validation knows the field is a list; `a[]=v` appends."""
    result: dict[str, Any] = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        segments = [head, *_KEY_RE.findall("[" + rest)] if rest else [head]
        node: Any = result
        for index, segment in enumerate(segments):
            last = index == len(segments) - 1
            if segment == "" and index > 0 and isinstance(node, dict):
                # `expand[]=a&expand[]=b`: an appended list element.
                segment = str(sum(1 for key in node if key.isdigit()))
            if last:
                node[segment] = value
            else:
                child = node.get(segment)
                if not isinstance(child, dict):
                    child = {}
                    node[segment] = child
                node = child
    return result


# --- Schemas compiled from stripe-python's TypedDicts ---------------------------------


@dataclass
class Node:
    kind: str  # str, currency, int, bool, decimal, float, enum, any, obj, list, map, union
    allow_empty: bool = False
    values: frozenset[str] = frozenset()
    item: Node | None = None
    fields: dict[str, tuple[Node, bool]] = field(default_factory=dict)
    options: tuple[Node, ...] = ()


_ANY = Node("any")
_cache: dict[type, Node] = {}


def _resolve(annotation: Any, module: types.ModuleType) -> Node:
    origin = typing.get_origin(annotation)
    if origin in (typing_extensions.NotRequired, typing_extensions.Required):
        return _resolve(typing.get_args(annotation)[0], module)
    if isinstance(annotation, typing.ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        try:
            annotation = eval(annotation, vars(module))  # noqa: S307 - stripe's own annotations
        except NameError:
            return _ANY
        return _resolve(annotation, module)
    if origin in (typing.Union, types.UnionType):
        allow_empty = False
        literals: set[str] = set()
        options: list[Node] = []
        for arg in typing.get_args(annotation):
            node = _resolve(arg, module)
            if node.kind == "enum" and node.values == frozenset({""}):
                allow_empty = True
            elif node.kind == "enum":
                literals |= node.values
            elif node.kind == "str" and literals:
                continue  # `Literal['a', 'b']|str`: the str is stripe-python's leniency
            else:
                options.append(node)
        if literals:
            options = [o for o in options if o.kind != "str"]
            options.insert(0, Node("enum", values=frozenset(literals)))
        if len(options) == 1:
            only = options[0]
            return Node(
                only.kind,
                allow_empty=allow_empty or only.allow_empty,
                values=only.values,
                item=only.item,
                fields=only.fields,
                options=only.options,
            )
        return Node("union", allow_empty=allow_empty, options=tuple(options))
    if origin in (typing.Literal, typing_extensions.Literal):
        return Node(
            "enum",
            values=frozenset(
                str(v).lower() if isinstance(v, bool) else str(v)
                for v in typing.get_args(annotation)
            ),
        )
    if origin in (list, typing.List):  # noqa: UP006
        return Node("list", item=_resolve(typing.get_args(annotation)[0], module))
    if origin in (dict, typing.Dict):  # noqa: UP006
        return Node("map", item=_resolve(typing.get_args(annotation)[1], module))
    if origin is not None and getattr(origin, "__name__", "") == "UntypedStripeObject":
        return Node("map", item=_resolve(typing.get_args(annotation)[0], module))
    if typing_extensions.is_typeddict(annotation):
        return compile_typeddict(annotation)
    if annotation is bool:
        return Node("bool")
    if annotation is int:
        return Node("int")
    if annotation is float:
        return Node("float")
    if annotation is Decimal:
        return Node("decimal")
    if annotation is str:
        return Node("str")
    return _ANY


def compile_typeddict(cls: type) -> Node:
    """A stripe-python params TypedDict → a validator node (cached, recursion-safe)."""
    if cls in _cache:
        return _cache[cls]
    node = Node("obj")
    _cache[cls] = node
    module = sys.modules[cls.__module__]
    required = getattr(cls, "__required_keys__", frozenset())
    for name, annotation in cls.__annotations__.items():
        if name in _CLIENT_OPTIONS:
            continue
        child = _resolve(annotation, module)
        if child.kind == "str" and (name == "currency" or name.endswith("_currency")):
            # A three-letter currency code: Stripe refuses codes it does not support.
            child = Node("currency", allow_empty=child.allow_empty)
        node.fields[name] = (child, name in required)
    return node


def accepted_parameters(cls: type) -> set[str]:
    """The top-level parameter names an endpoint accepts."""
    return set(compile_typeddict(cls).fields)


# --- Validation and coercion ----------------------------------------------------------


def _path(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def _as_list(value: Any, param: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(key.isdigit() for key in value):
        return [value[key] for key in sorted(value, key=int)]
    raise invalid(f"Invalid array: {param}", param=param)


def validate(node: Node, value: Any, param: str = "") -> Any:
    if (
        isinstance(value, str)
        and value == ""
        and node.kind not in ("str", "enum", "any")
    ):
        if node.allow_empty:
            return ""
        raise StripeError(
            400,
            f"You passed an empty string for '{param}'. We assume empty values are an "
            f"attempt to unset a parameter; however '{param}' cannot be unset. You "
            "should "
            f"remove '{param}' from your request or supply a non-empty value.",
            param=param,
            code="parameter_invalid_empty",
        )
    kind = node.kind
    if kind == "any":
        return value
    if kind == "union":
        return _validate_union(node, value, param)
    if kind == "obj":
        if not isinstance(value, dict):
            raise invalid(f"Invalid object: {param}", param=param)
        return validate_object(node, value, param)
    if kind == "list":
        assert node.item is not None
        return [
            validate(node.item, item, f"{param}[{index}]")
            for index, item in enumerate(_as_list(value, param))
        ]
    if kind == "map":
        if not isinstance(value, dict):
            raise invalid(f"Invalid object: {param}", param=param)
        assert node.item is not None
        # In a map (metadata) an empty value unsets that key.
        return {
            key: item if item == "" else validate(node.item, item, _path(param, key))
            for key, item in value.items()
        }
    if not isinstance(value, str):
        raise invalid(
            f"Invalid {param}: expected a single value, got an object", param=param
        )
    if kind == "str":
        if value == "" and not node.allow_empty:
            return _empty_string(param)
        return value
    if kind == "currency":
        if value == "" and node.allow_empty:
            return ""
        return check_currency(value, param=param)
    if kind == "enum":
        if value == "" and node.allow_empty:
            return ""
        if value not in node.values:
            choices = sorted(node.values - {""})
            listed = (
                ", ".join(choices[:-1])
                + (" or " if len(choices) > 1 else "")
                + choices[-1]
            )
            raise invalid(f"Invalid {param}: must be one of {listed}", param=param)
        return value
    if kind == "int":
        if not re.fullmatch(r"-?\d+", value):
            raise StripeError(
                400,
                f"Invalid integer: {value}",
                param=param,
                code="parameter_invalid_integer",
            )
        return int(value)
    if kind == "bool":
        if value not in ("true", "false"):
            raise invalid(f"Invalid boolean: {value}", param=param)
        return value == "true"
    if kind == "decimal":
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise invalid(f"Invalid decimal: {value}", param=param) from None
        if not number.is_finite():
            raise invalid(f"Invalid decimal: {value}", param=param)
        return number
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            raise invalid(f"Invalid float: {value}", param=param) from None
    return value


def _empty_string(param: str) -> str:
    raise StripeError(
        400,
        f"You passed an empty string for '{param}'. We assume empty values are an "
        "attempt "
        f"to unset a parameter; however '{param}' cannot be unset. You should remove "
        f"'{param}' from your request or supply a non-empty value.",
        param=param,
        code="parameter_invalid_empty",
    )


def _validate_union(node: Node, value: Any, param: str) -> Any:
    if isinstance(value, str) and value == "" and node.allow_empty:
        return ""
    if isinstance(value, dict):
        wanted = ("obj", "map", "list")
    else:
        wanted = ("str", "currency", "enum", "int", "bool", "decimal", "float", "any")
    last_error: StripeError | None = None
    for option in node.options:
        if option.kind not in wanted:
            continue
        if (
            option.kind == "list"
            and isinstance(value, dict)
            and not all(k.isdigit() for k in value)
        ):
            continue
        try:
            return validate(option, value, param)
        except StripeError as error:
            last_error = error
    if last_error is not None:
        raise last_error
    raise invalid(f"Invalid value for {param}", param=param)


def validate_object(
    node: Node, value: dict[str, Any], prefix: str = ""
) -> dict[str, Any]:
    unknown = [key for key in value if key not in node.fields]
    if unknown:
        names = [_path(prefix, key) for key in unknown]
        noun = "parameter" if len(names) == 1 else "parameters"
        raise StripeError(
            400,
            f"Received unknown {noun}: {', '.join(names)}",
            param=names[0],
            code="parameter_unknown",
        )
    for key, (_child, required) in node.fields.items():
        if required and key not in value:
            raise missing_param(_path(prefix, key))
    return {
        key: validate(node.fields[key][0], item, _path(prefix, key))
        for key, item in value.items()
    }


def validate_params(cls: type | None, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate a request's decoded parameters against the endpoint's TypedDict."""
    if cls is None:
        return raw
    return validate_object(compile_typeddict(cls), raw)
