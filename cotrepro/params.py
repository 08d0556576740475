"""Params files: YAML in, frozen dataclasses out, one clear line on any mistake.

Every experiment is configured by a YAML file under `params/`. `load_params(path, schema)` reads
it (following `include:` to a base file, whose values the variant overrides key by key, as
lm-evaluation-harness task configs do), checks every key against `schema` and returns a frozen
dataclass. Unknown keys, wrong types and out-of-range values raise `ParamsError`, whose message is
one line naming the file and the dotted key, e.g.

    params/micro/sot.yaml: train.lr: expected a number, got 'fast'

Config dataclasses carry their own documentation: declare fields with `param(default, "help",
ge=..., le=..., choices=...)` (the help text is what `cotrepro validate --explain` prints).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """A params file is malformed. The message is one line: `FILE: KEY: what is wrong`."""


def param(default: Any = dataclasses.MISSING, help: str = "", *, ge: float | None = None,
          le: float | None = None, gt: float | None = None, choices: tuple | None = None,
          default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that documents itself and declares its valid range."""
    meta = {"help": help, "ge": ge, "le": le, "gt": gt, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    if isinstance(default, (list, dict, set)):
        raise TypeError("use default_factory for mutable defaults")
    return dataclasses.field(default=default, metadata=meta)


class Invalid(ValueError):
    """Raised by a section's `check()` for a mistake spanning fields: `Invalid(key, message)`."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, read as YAML 1.2 reads numbers: `1e-4` is a float (YAML 1.1, and so
    plain PyYAML, needs `1.0e-4` and reads `1e-4` as a string, which no user means)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))

Where = dict[str, tuple[str, int]]  # dotted key -> (file, line) where it was written


def load_yaml(path: str | Path) -> dict:
    """Read a params file, resolving `include:` (relative to the including file) recursively."""
    return load_yaml_where(path)[0]


def load_yaml_where(path: str | Path) -> tuple[dict, Where]:
    """`load_yaml`, plus where each dotted key was written (for error messages)."""
    return _load_yaml(Path(path), seen=())


def _read_text(path: Path, including: Path | None) -> str:
    via = f" (from the include: of {including})" if including else ""
    if path.is_dir():
        raise ParamsError(f"{path}: cannot read file: it is a folder{via}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ParamsError(f"{path}: cannot read file ({e.strerror or e}){via}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ParamsError(f"{path}: line {line}: not a UTF-8 text file (byte 0x{data[e.start]:02x}); "
                          f"a params file is YAML text") from None


def _load_yaml(path: Path, seen: tuple[Path, ...], including: Path | None = None) -> tuple[dict, Where]:
    if path.resolve() in seen:
        raise ParamsError(f"{path}: include: circular include")
    text = _read_text(path, including)
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "YAML"
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ParamsError(f"{path}: {where}: invalid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: (top level): expected a mapping of keys, got {type(data).__name__}")
    where: Where = {}
    _key_lines(node, path, "", where)
    include = data.pop("include", None)
    if include is None:
        return data, where
    includes = [include] if isinstance(include, str) else include
    if not isinstance(includes, list) or not includes or not all(isinstance(i, str) for i in includes):
        raise ParamsError(f"{path}: include: expected a file path or a list of file paths "
                          f"(line {where['include'][1]})")
    merged: dict = {}
    merged_where: Where = {}
    for name in includes:
        if not (path.parent / name).is_file():
            what = "is a folder, not a params file" if (path.parent / name).is_dir() else "no such file"
            raise ParamsError(f"{path}: include: {name}: {what} (line {where['include'][1]})")
        base, base_where = _load_yaml(path.parent / name, seen + (path.resolve(),), including=path)
        merged = deep_merge(merged, base)
        merged_where.update(base_where)
    merged_where.update(where)
    return deep_merge(merged, data), merged_where


def _key_lines(node, path: Path, prefix: str, where: Where) -> None:
    """Record the line of every key of a mapping node (recursively); a key written twice in one
    mapping is an error (PyYAML would silently keep the last)."""
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ParamsError(f"{path}: {prefix}{key}: written twice (lines {seen[key]} and {line}); keep one")
        seen[key] = line
        where[prefix + key] = (str(path), line)
        _key_lines(value_node, path, f"{prefix}{key}.", where)


def step_params_file(params_file: str | Path, name: str, key: str) -> Path:
    """Another step's params file, named at `key` of `params_file`, resolved against its folder.

    Steps that read an earlier step's results name that step's params file (e.g.
    `traces_from: 02_sample_teacher_traces.yaml`); a missing one is a one-line ParamsError.
    """
    if not name:
        raise ParamsError(f"{params_file}: {key}: must name the params file of the step it reads")
    path = Path(name) if Path(name).is_absolute() else Path(params_file).resolve().parent / name
    if not path.is_file():
        raise ParamsError(f"{params_file}: {key}: no such params file {path}")
    return path


def deep_merge(base: dict, override: dict) -> dict:
    """Override `base` with `override`, recursing into nested mappings (lists are replaced whole)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_params(path: str | Path, schema: type[T], overrides: dict | None = None) -> T:
    """Load `path` (plus optional in-memory overrides, e.g. from papermill) into `schema`."""
    data, where = load_yaml_where(path)
    if overrides:
        data = deep_merge(data, overrides)
    return from_dict(schema, data, source=str(path), where=where)


def from_dict(schema: type[T], data: dict, source: str = "<params>", prefix: str = "",
              where: Where | None = None) -> T:
    """Build the frozen dataclass `schema` from a plain mapping, checking every key, then run the
    cross-field `check()` of every section that has one."""
    try:
        built = _build(schema, data, source, prefix)
        _run_checks(built, source, prefix)
    except ParamsError as e:
        raise ParamsError(_located(str(e), source, where or {})) from None
    return built


def _located(message: str, source: str, where: Where) -> str:
    """`message` with the line its key was written on, and the file when it was an include."""
    head = f"{source}: "
    if not message.startswith(head):
        return message
    key = message[len(head):].split(": ", 1)[0]
    key = re.sub(r"\[\d+\]$", "", key)
    while key and key not in where:
        key = key.rpartition(".")[0]
    if not key:
        return message
    file, line = where[key]
    return f"{message} (line {line})" if Path(file) == Path(source) else f"{message} ({file} line {line})"


def _run_checks(obj: Any, source: str, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _run_checks(value, source, f"{prefix}{f.name}.")
    check = getattr(obj, "check", None)
    if check is not None:
        try:
            check()
        except Invalid as e:
            raise ParamsError(f"{source}: {prefix}{e.key}: {e.message}") from None


def _build(schema: type[T], data: dict, source: str, prefix: str) -> T:
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: {prefix.rstrip('.') or '(top level)'}: expected a mapping")
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    hints = typing.get_type_hints(schema)
    for key in data:
        if key not in fields:
            close = _closest(str(key), fields)
            hint = f" (did you mean {close!r}?)" if close else f"; known keys: {', '.join(sorted(fields))}"
            raise ParamsError(f"{source}: {prefix}{key}: unknown key{hint}")
    kwargs = {}
    for name, f in fields.items():
        key = prefix + name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ParamsError(f"{source}: {key}: required key is missing")
            continue
        value = _coerce(hints[name], data[name], source, key)
        _check_range(f, value, source, key)
        kwargs[name] = value
    return schema(**kwargs)


def to_dict(obj: Any) -> Any:
    """A params dataclass as plain YAML-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, source, key)
            except ParamsError as e:
                errors.append(e)
        raise errors[-1]
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"{source}: {key}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, source, prefix=key + ".")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{source}: {key}: expected a list, got {_show(value)}")
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{source}: {key}: expected a mapping, got {_show(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(vt, v, source, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{source}: {key}: expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{source}: {key}: expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{source}: {key}: expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{source}: {key}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"params schema type {tp!r} at {key} is not supported")


def _check_range(f: dataclasses.Field, value: Any, source: str, key: str) -> None:
    meta = f.metadata
    choices = meta.get("choices")
    if choices is not None and value is not None:
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v not in choices:
                raise ParamsError(f"{source}: {key}: {v!r} is not one of {list(choices)}")
    numbers = value if isinstance(value, (list, tuple)) else [value]
    for v in numbers:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            continue
        if meta.get("ge") is not None and v < meta["ge"]:
            raise ParamsError(f"{source}: {key}: {v} is below the minimum {meta['ge']}")
        if meta.get("gt") is not None and v <= meta["gt"]:
            raise ParamsError(f"{source}: {key}: {v} must be greater than {meta['gt']}")
        if meta.get("le") is not None and v > meta["le"]:
            raise ParamsError(f"{source}: {key}: {v} is above the maximum {meta['le']}")


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def _closest(key: str, names: typing.Iterable[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(key, list(names), n=1, cutoff=0.75)
    return match[0] if match else None


def describe(schema: type, prefix: str = "", defaults: Any = None) -> list[str]:
    """One line per key of `schema`: dotted name, default and help (for `cotrepro validate --explain`).

    `defaults` is the instance whose values are shown for a nested section (a section's own
    default_factory may differ from its class defaults, e.g. the micro teacher's shape)."""
    lines = []
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if defaults is not None:
            default = getattr(defaults, f.name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and dataclasses.is_dataclass(default):
            lines += describe(tp, prefix + f.name + ".", default)
            continue
        lines.append(f"{prefix}{f.name} = {default!r}  # {f.metadata.get('help', '')}")
    return lines
