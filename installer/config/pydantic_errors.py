"""Pydantic's validation errors turned into Problems an operator can act on."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from installer.config.addresses import PREVIEW, preview
from installer.config.problems import Problems, one_line
from installer.config.refusals import refuse

Position = Callable[[tuple[str | int, ...]], tuple[int | None, int | None]]


def key_path(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside an annotation such as `X`, `X | None`, `list[X]` or `dict[str, X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return None
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def allowed_keys(root: type[BaseModel], parent: tuple[str | int, ...]) -> list[str]:
    """The keys the file may use at `parent` (aliases, as written in YAML)."""
    model: type[BaseModel] | None = root
    for part in parent:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = next((f for name, f in model.model_fields.items() if part in (name, f.alias)), None)
        model = _model_in(field.annotation) if field else None
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _describe(error: dict[str, Any], root: type[BaseModel], written: str | None = None) -> tuple[str, str]:
    loc = tuple(error["loc"])
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        options = allowed_keys(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), options, n=1, cutoff=0.6)
        fix = f"did you mean '{close[0]}'?" if close else f"remove it; allowed keys here: {', '.join(options)}"
        return f"unknown key '{loc[-1]}'", fix
    if kind == "missing":
        return "required key is missing", f"add {key_path(loc)} (see the sample inventories)"
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        return f"{preview(value)} is not allowed", f"use one of {expected}"
    if kind == "string_type" and isinstance(value, float):
        # Unquoted 1.10 is the float 1.1 to YAML: name both, and quote what the operator wrote.
        text = written or repr(value)
        return (f"YAML read the number {value!r} from {text} (unquoted), not the text {text!r}",
                f'quote it: {loc[-1]}: "{text}"')
    message = str(error["msg"]).removeprefix("Value error, ")
    # Bad values are echoed as a short prefix only: a pasted secret or a page of payload stays out of
    # the terminal and the JSON output.
    shown = _shown(value)
    if _text(value) in message:  # the message already quotes the value
        return _shorten_quoted(message, value), f"correct {key_path(loc)}"
    return f"{message} (got {shown})", f"correct {key_path(loc)}"


def _text(value: Any) -> str:
    """str(value), except for an integer of thousands of digits (0x... in YAML), which Python refuses."""
    try:
        return str(value)
    except ValueError:
        return f"<a number of {value.bit_length()} bits>"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return preview(value)
    if isinstance(value, bool | int | float) or value is None:
        return one_line(_text(value), PREVIEW)
    return type(value).__name__


def _shorten_quoted(message: str, value: Any) -> str:
    """A validator's message that quotes a long string value, with the value cut to its preview."""
    if not isinstance(value, str) or len(value) <= PREVIEW:
        return message
    return message.replace(repr(value), preview(value)).replace(value, value[:PREVIEW] + "...")


def add_validation_errors(
    exc: ValidationError, root: type[BaseModel], problems: Problems, origin: Callable[[str], str], position: Position,
    written: Callable[[tuple[str | int, ...]], str | None] = lambda loc: None,
) -> None:
    """One problem per pydantic error, placed in the file (or --set) the value came from; `written` gives a
    number's text as the file spells it (1.10, where the value is 1.1)."""
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = key_path(loc)
        source = origin(path)
        in_file = source.endswith("kfinstall.yaml")
        message, fix = _describe(dict(error), root, written(loc) if in_file else None)
        line, column = position(loc) if in_file else (None, None)
        refuse(problems, "setting-value", source, path, message, fix, line=line, column=column)
