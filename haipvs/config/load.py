"""Reading a config file: YAML with the line of every node, every error at once.

Rule 1: a file is accepted whole or refused whole. Refusal lists *every* problem found in
one pass (exabgp's error collector), each as ``FILE:LINE: key.path: message``; warnings use
the same form with a ``warning:`` marker. Nothing is printed or logged here: the caller
(check-config, the supervisor's reload) decides where the lines go.

Rule 2: the line of a problem is the line of the YAML node it is about. The file is
composed into a node tree (``yaml.SafeLoader``, so no arbitrary tags), the tree is walked to
build plain data and a map from key path to line, and duplicate keys are refused there
(PyYAML silently keeps the last one, which is how a typo'd second ``port:`` goes unseen).

Rule 3: each section item (a VRRP instance, a virtual server...) is validated on its own, and
the cross-field rules of :mod:`haipvs.config.model` run over every item that validated, so a
typo in one virtual server does not hide a broken rule in another.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from haipvs.config.model import (
    CHECK_TYPES,
    BgpSettings,
    Config,
    Director,
    DnsCheck,
    ExecCheck,
    FileCheck,
    Finding,
    HttpCheck,
    HttpsCheck,
    IpvsSettings,
    KeyPath,
    PingCheck,
    Severity,
    SmtpCheck,
    SyncGroup,
    TcpCheck,
    UdpCheck,
    VirtualServer,
    VrrpInstance,
    format_key_path,
)
from haipvs.config.rules import find_rule_violations

__all__ = [
    "ConfigError",
    "ConfigInvalid",
    "ConfigWarning",
    "LoadedConfig",
    "dump_config",
    "load_config",
    "load_config_text",
]

_M = TypeVar("_M", bound=BaseModel)

# Pseudo key paths for problems that are not about one key.
SYNTAX_PATH = "yaml"
FILE_PATH = "(file)"

#: A config file larger than this is refused unread (10,000 real servers take ~2 MiB).
MAX_FILE_BYTES = 32 * 1024 * 1024
#: YAML aliases make a small file a huge tree (a "billion laughs": 306 bytes that expand
#: to 10^9 nodes). The tree may hold at most this many times the file's own nodes (an
#: anchor of defaults merged into every real server stays far below), and at least
#: ``_MIN_NODE_BUDGET`` nodes.
ALIAS_EXPANSION = 20
_MIN_NODE_BUDGET = 10_000


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One reason a file is refused: ``FILE:LINE: key.path: message``."""

    file: str
    line: int
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key_path}: {self.message}"


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """Legal but probably not meant: ``FILE:LINE: warning: key.path: message``."""

    file: str
    line: int
    key_path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: warning: {self.key_path}: {self.message}"


_P = TypeVar("_P", ConfigError, ConfigWarning)


class ConfigInvalid(Exception):  # noqa: N818 - the name docs/config.md uses
    """The file is refused; ``errors`` holds every reason, in file order."""

    def __init__(
        self, errors: Iterable[ConfigError], warnings: Iterable[ConfigWarning] = ()
    ) -> None:
        self.errors = tuple(errors)
        self.warnings = tuple(warnings)
        super().__init__("\n".join(str(error) for error in self.errors))


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: Config
    warnings: tuple[ConfigWarning, ...]
    # The line of a key path in the file (1 when unknown): checks made after loading
    # (haipvs.daemon.accept: script safety, host facts) locate their errors with it.
    line_of: Callable[[KeyPath], int] = field(default=lambda _path: 1, compare=False, repr=False)


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read and validate ``path``; raise :class:`ConfigInvalid` with every error."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigInvalid([ConfigError(
                file, 1, FILE_PATH,
                f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not a config file")])
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigInvalid([ConfigError(file, 1, FILE_PATH, f"cannot read: {reason}")]) from None
    return load_config_text(text, file)


def load_config_text(text: str, file: str = "<string>") -> LoadedConfig:
    """Validate YAML ``text`` as if read from ``file`` (the name used in messages)."""
    tree = _Tree(file)
    data = tree.build(text)
    findings: list[Finding] = []
    parts: dict[str, Any] = {}
    if tree.complete:
        # Duplicate keys keep their first value, so the rest of the file is still checked;
        # values the tree could not read are skipped rather than blamed twice.
        found, parts = _validate(data)
        findings = [
            finding
            for finding in found
            if not any(finding.key_path[: len(bad)] == bad for bad in tree.unreadable)
        ]
    errors = list(tree.errors)
    warnings: list[ConfigWarning] = []
    for finding in findings:
        line = tree.line_of(finding.key_path)
        path = format_key_path(finding.key_path) or FILE_PATH
        if finding.severity is Severity.ERROR:
            errors.append(ConfigError(file, line, path, finding.message))
        else:
            warnings.append(ConfigWarning(file, line, path, finding.message))
    errors = _ordered(errors)
    warnings = _ordered(warnings)
    if errors:
        raise ConfigInvalid(errors, warnings)
    # Every section validated on its own and no rule is broken: assemble them without
    # validating them twice (nor building the root's validator: model.py's defer_build).
    config = Config.model_construct(**parts)
    # A loaded config must compile (compile.py's rule): a settings type that refuses a value
    # the rules let through is reported here, at its line, not when the daemon starts.
    # Imported here: it pulls in vrrp, checkers and haipvs.ipvs.
    from haipvs.config.compile import CompileError, compile_config

    try:
        compile_config(config)
    except CompileError as exc:
        error = ConfigError(
            file, tree.line_of(exc.key_path), format_key_path(exc.key_path), exc.message
        )
        raise ConfigInvalid([error], warnings) from None
    return LoadedConfig(config, tuple(warnings), tree.line_of)


def dump_config(config: Config) -> str:
    """YAML text that loads back to an equal ``Config`` (defaults left out)."""
    data = config.model_dump(mode="json", exclude_defaults=True)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _ordered(items: Iterable[_P]) -> list[_P]:
    unique = dict.fromkeys(items)
    return sorted(unique, key=lambda item: (item.line, item.key_path, item.message))


# --------------------------------------------------------------------------------------------
# YAML -> plain data + lines


@dataclass(frozen=True, slots=True)
class _Mark:
    key_line: int  # the line of `key:` (or of the `- ` item)
    value_line: int  # where the value starts
    scalar: bool


_STANDARD_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


class _Tree:
    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[ConfigError] = []
        self.marks: dict[KeyPath, _Mark] = {}
        self.unreadable: list[KeyPath] = []
        self.complete = False
        self._loader: yaml.SafeLoader | None = None
        self._budget = self._limit = 0

    def build(self, text: str) -> Any:
        try:
            loader, node = self._compose(text)
        except yaml.MarkedYAMLError as exc:
            self._syntax_error(exc)
            return None
        except yaml.YAMLError as exc:
            self._error(1, SYNTAX_PATH, str(exc))
            return None
        self._loader = loader
        try:
            if node is None:
                self._error(1, FILE_PATH, "the file is empty")
                return None
            self._limit = self._budget = max(
                _MIN_NODE_BUDGET, ALIAS_EXPANSION * _distinct_nodes(node))
            try:
                data = self._walk(node, (), node.start_mark.line + 1)
            except _TooManyNodesError as exc:
                # Blame the top-level key whose value the aliases blew up.
                top = exc.path[:1]
                self._error(self.line_of(top), format_key_path(top) or FILE_PATH,
                            f"YAML aliases expand this past {exc.budget} nodes "
                            f"({ALIAS_EXPANSION} times the file's own): refused")
                return None
            self.complete = True
            return data
        finally:
            loader.dispose()

    @staticmethod
    def _compose(text: str) -> tuple[yaml.SafeLoader, yaml.Node | None]:
        # LibYAML composes ~15x faster (10,000 real servers: seconds, not tens of seconds);
        # its messages differ from PyYAML's, so a file it refuses is read again by the pure
        # Python parser and the message is always PyYAML's.
        fast: Any = getattr(yaml, "CSafeLoader", None)
        if fast is not None:
            loader = fast(text)
            try:
                return loader, loader.get_single_node()
            except yaml.YAMLError:
                loader.dispose()
        loader = yaml.SafeLoader(text)
        try:
            return loader, loader.get_single_node()
        except yaml.YAMLError:
            loader.dispose()
            raise

    def line_of(self, path: KeyPath) -> int:
        exact = path in self.marks
        while path and path not in self.marks:
            path = path[:-1]
        mark = self.marks.get(path)
        if mark is None:
            return 1
        return mark.value_line if exact and mark.scalar else mark.key_line

    def _error(self, line: int, path: str, message: str) -> None:
        self.errors.append(ConfigError(self.file, line, path, message))

    def _syntax_error(self, exc: yaml.MarkedYAMLError) -> None:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or "not valid YAML"
        if exc.context:
            # PyYAML's own reading order: "while parsing a flow mapping, expected ',' or '}'".
            problem = f"{exc.context}, {problem}"
        self._error(line, SYNTAX_PATH, problem)

    def _walk(self, node: yaml.Node, path: KeyPath, key_line: int) -> Any:
        loader = self._loader
        assert loader is not None
        self._budget -= 1
        if self._budget < 0:
            raise _TooManyNodesError(path, self._limit)
        value_line = node.start_mark.line + 1
        self.marks[path] = _Mark(key_line, value_line, isinstance(node, yaml.ScalarNode))

        def where() -> str:
            return format_key_path(path) or FILE_PATH

        if isinstance(node, yaml.MappingNode):
            if node.tag not in _STANDARD_COLLECTION_TAGS:
                self._error(value_line, where(), f"unsupported YAML tag {node.tag}")
                self.unreadable.append(path)
                return None
            own_keys = {id(key_node) for key_node, _ in node.value}
            loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
            result: dict[str, Any] = {}
            first_line: dict[str, int] = {}
            merged: set[str] = set()
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                key = (
                    loader.construct_object(key_node)
                    if isinstance(key_node, yaml.ScalarNode)
                    else None
                )
                if not isinstance(key, str):
                    self._error(line, where(), f"keys must be names, not {key_node.value!r}")
                    continue
                is_own = id(key_node) in own_keys
                if key in merged and is_own:
                    # YAML merge keys: the mapping's own key overrides the merged one.
                    merged.discard(key)
                elif key in first_line and not is_own:
                    continue  # an earlier merged mapping takes precedence
                elif key in first_line:
                    self._error(
                        line,
                        format_key_path((*path, key)),
                        f"duplicate key (first at line {first_line[key]})",
                    )
                    continue
                elif not is_own:
                    merged.add(key)
                first_line[key] = line
                result[key] = self._walk(value_node, (*path, key), line)
            return result
        if isinstance(node, yaml.SequenceNode):
            if node.tag not in _STANDARD_COLLECTION_TAGS:
                self._error(value_line, where(), f"unsupported YAML tag {node.tag}")
                self.unreadable.append(path)
                return None
            return [
                self._walk(item, (*path, index), item.start_mark.line + 1)
                for index, item in enumerate(node.value)
            ]
        try:
            return loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self._error(value_line, where(), exc.problem or "cannot read this value")
            self.unreadable.append(path)
            return None


class _TooManyNodesError(Exception):
    def __init__(self, path: KeyPath, budget: int) -> None:
        super().__init__(path, budget)
        self.path, self.budget = path, budget


def _distinct_nodes(root: yaml.Node) -> int:
    """The nodes of the composed graph, each alias target counted once."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack += (key, value)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value
    return len(seen)


# --------------------------------------------------------------------------------------------
# Plain data -> findings

_SECTIONS = ("director", "vrrp", "sync_groups", "virtual_servers", "ipvs", "bgp")
_LIST_SECTIONS: dict[str, type[BaseModel]] = {
    "vrrp": VrrpInstance,
    "sync_groups": SyncGroup,
    "virtual_servers": VirtualServer,
}


def _all_field_names(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    names: set[str] = set()
    if model in seen:
        return names
    seen.add(model)
    for name, info in model.model_fields.items():
        names.add(name)
        for inner in _model_types(info.annotation):
            names |= _all_field_names(inner, seen)
    return names


def _model_types(annotation: Any) -> Iterable[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _model_types(arg)
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and origin is not annotation:
        yield from _model_types(origin)


_VOCABULARY = sorted(_all_field_names(Config, set()))


def _validate(data: Any) -> tuple[list[Finding], dict[str, Any]]:
    """The findings, and the validated sections (complete only when nothing is wrong)."""
    if not isinstance(data, dict):
        return [Finding((), "must be a mapping of sections: " + ", ".join(_SECTIONS))], {}
    findings: list[Finding] = []
    for key in data:
        if key not in _SECTIONS:
            findings.append(_unknown_key((key,), _SECTIONS))

    director = _validate_one(Director, data.get("director", {}), ("director",), findings)
    ipvs = _validate_one(IpvsSettings, data.get("ipvs", {}), ("ipvs",), findings)
    bgp = None if data.get("bgp") is None else _validate_one(
        BgpSettings, data["bgp"], ("bgp",), findings
    )
    valid: dict[str, list[tuple[int, Any]]] = {}
    all_valid: dict[str, bool] = {}
    for section, model in _LIST_SECTIONS.items():
        raw = data.get(section, [])
        valid[section] = []
        all_valid[section] = isinstance(raw, list)
        if not isinstance(raw, list):
            findings.append(Finding((section,), "must be a list"))
            continue
        for index, item in enumerate(raw):
            parsed = _validate_one(model, item, (section, index), findings)
            if parsed is None:
                all_valid[section] = False
            else:
                valid[section].append((index, parsed))

    # A virtual server whose only broken parts are some of its real servers still gets its
    # rules checked, over the real servers that are fine (rule 3 of the module docstring).
    salvaged: dict[int, tuple[int, ...]] = {}
    raw_services = data.get("virtual_servers")
    if isinstance(raw_services, list):
        done = {index for index, _ in valid["virtual_servers"]}
        for index, item in enumerate(raw_services):
            if index in done:
                continue
            rescue = _without_broken_real_servers(item)
            if rescue is not None:
                salvaged[index] = rescue[1]
                valid["virtual_servers"].append((index, rescue[0]))
        valid["virtual_servers"].sort(key=lambda pair: pair[0])

    rules = find_rule_violations(
        director=director,
        vrrp=valid["vrrp"],
        sync_groups=valid["sync_groups"],
        virtual_servers=valid["virtual_servers"],
        ipvs=ipvs,
        all_vrrp_valid=all_valid["vrrp"],
        bgp=bgp,
        scale_out="bgp" in data,
    )
    findings += [_renumbered(finding, salvaged) for finding in rules if _keep(finding, salvaged)]
    parts: dict[str, Any] = {"director": director, "ipvs": ipvs, "bgp": bgp}
    parts.update({section: tuple(item for _, item in valid[section]) for section in valid})
    return findings, parts


def _without_broken_real_servers(raw: Any) -> tuple[VirtualServer, tuple[int, ...]] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("real_servers"), list):
        return None
    try:
        VirtualServer.model_validate(raw)
    except ValidationError as exc:
        broken: set[int] = set()
        for error in exc.errors():
            loc = error["loc"]
            if len(loc) < 2 or loc[0] != "real_servers" or not isinstance(loc[1], int):
                return None
            broken.add(loc[1])
    kept = tuple(i for i in range(len(raw["real_servers"])) if i not in broken)
    trimmed = {**raw, "real_servers": [raw["real_servers"][i] for i in kept]}
    try:
        return VirtualServer.model_validate(trimmed), kept
    except ValidationError:
        return None


def _keep(finding: Finding, salvaged: Mapping[int, tuple[int, ...]]) -> bool:
    path = finding.key_path
    if len(path) < 2 or path[0] != "virtual_servers" or path[1] not in salvaged:
        return True
    # Counting rules (quorum) would count only the real servers that validated.
    return finding.severity is Severity.ERROR


def _renumbered(finding: Finding, salvaged: Mapping[int, tuple[int, ...]]) -> Finding:
    path = finding.key_path
    if len(path) < 2 or path[0] != "virtual_servers" or path[1] not in salvaged:
        return finding
    kept = salvaged[int(path[1])]
    if len(path) >= 4 and path[2] == "real_servers" and isinstance(path[3], int):
        path = (*path[:3], kept[path[3]], *path[4:])
    return Finding(path, _renumber_text(finding.message, kept), finding.severity)


def _renumber_text(message: str, kept: tuple[int, ...]) -> str:
    # "(also real_servers[0])" names a sibling by its index in the trimmed list.
    return re.sub(
        r"real_servers\[(\d+)\]", lambda m: f"real_servers[{kept[int(m.group(1))]}]", message
    )


def _validate_one(model: type[_M], raw: Any, prefix: KeyPath, findings: list[Finding]) -> _M | None:
    if raw is None:
        findings.append(Finding(prefix, "must be a mapping, not empty"))
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors():
            findings.append(_finding_from(error, prefix, model))
        return None


def _clean_loc(loc: Iterable[int | str]) -> KeyPath:
    # pydantic puts the discriminator's tag in the location of a tagged-union error
    # (`check.http.path`); the YAML has no such key.
    cleaned: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and part in CHECK_TYPES and cleaned and cleaned[-1] == "check":
            continue
        cleaned.append(part)
    return tuple(cleaned)


_TYPE_MESSAGES: Mapping[str, str] = {
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
}


def _finding_from(error: ErrorDetails, prefix: KeyPath, model: type[BaseModel]) -> Finding:
    path = (*prefix, *_clean_loc(error["loc"]))
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(path, _fields_at(model, error["loc"]) or _VOCABULARY)
    if kind == "union_tag_invalid":
        expected = str(context.get("expected_tags", "")).replace("'", "")
        return Finding((*path, "type"), f"must be one of: {expected}")
    if kind == "union_tag_not_found":
        return Finding((*path, "type"), "is required (one of: " + ", ".join(CHECK_TYPES) + ")")
    if kind == "literal_error":
        expected = str(context.get("expected", "")).replace("'", "")
        return Finding(path, f"must be {expected}")
    message = _TYPE_MESSAGES.get(kind, error["msg"])
    return Finding(path, message)


def _unknown_key(path: KeyPath, vocabulary: Iterable[str]) -> Finding:
    key = str(path[-1])
    close = difflib.get_close_matches(key, list(vocabulary), n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if not close:
        # `path:` on a tcp check: say which check types have it.
        owners = [tag for tag, model in _CHECK_MODELS.items() if key in model.model_fields]
        if owners and len(path) >= 2 and path[-2] == "check":
            hint = f" (only {', '.join(owners)} checks have {key})"
    return Finding(path, f"unknown key{hint}")


_CHECK_MODELS: Mapping[str, type[BaseModel]] = {
    "tcp": TcpCheck,
    "http": HttpCheck,
    "https": HttpsCheck,
    "exec": ExecCheck,
    "dns": DnsCheck,
    "udp": UdpCheck,
    "smtp": SmtpCheck,
    "ping": PingCheck,
    "file": FileCheck,
}


def _fields_at(root: type[BaseModel], loc: Iterable[int | str]) -> list[str]:
    """The keys the model at ``loc`` (minus its last part) accepts; [] if unknown."""
    annotation: Any = root
    for part in list(loc)[:-1]:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            annotation = args[0] if args else None
        elif part in _CHECK_MODELS and _CHECK_MODELS[part] in _union_members(annotation):
            annotation = _CHECK_MODELS[part]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            annotation = field.annotation if field is not None else None
        else:
            return []
    model = _unwrap(annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    # Annotated[X, ...] -> X; X | None -> X (when one member is left).
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    members = [m for m in _union_members(annotation) if m is not type(None)]
    if len(members) == 1:
        return _unwrap(members[0])
    if typing.get_origin(annotation) in (types.UnionType, typing.Union) and members:
        return annotation
    return annotation


def _union_members(annotation: Any) -> tuple[Any, ...]:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        flat: list[Any] = []
        for member in typing.get_args(annotation):
            flat.extend(_union_members(member) or (member,))
        return tuple(flat)
    return ()
