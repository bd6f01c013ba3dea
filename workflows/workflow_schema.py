"""Read and check workflow YAML files, keeping the line of every key and value for errors.

The file is composed (not loaded) with PyYAML so that each value stays a node with its
``start_mark``; values are turned into Python objects only when they are resolved (see
:mod:`workflows.workflow_resolve`), so a bad variable is reported at the line that uses it. The
format itself is described in :mod:`workflows.runner`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

NAME_RE = re.compile(r"^[a-z0-9_-]+$")
VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CALL_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
TOP_KEYS = ("name", "description", "vars", "state", "stages")
STAGE_KEYS = (
    "name",
    "description",
    "command",
    "call",
    "args",
    "options",
    "kwargs",
    "when",
    "inputs",
    "outputs",
    "needs",
)
# Commands a stage may not run: a workflow inside a workflow would share the state file.
FORBIDDEN_COMMANDS = ("run",)
_CONSTRUCTOR = yaml.constructor.SafeConstructor()

# A command of the click tree that ``typer.main.get_command`` builds. Typer may vendor its own
# click, so commands are looked at by duck typing (list_commands, params) rather than isinstance.
Command = Any
Option = Any


class WorkflowError(ValueError):
    """A workflow file, or a value given for it, is wrong; says where when it knows.

    Parameters
    ----------
    message : str
        What is wrong and, where it helps, what to write instead.
    source : str
        The workflow file as the user named it.
    line : int, optional
        1-based line of the key or value at fault.
    """

    def __init__(self, message: str, source: str = "", line: int | None = None) -> None:
        self.message, self.source, self.line = message, source, line
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class Entry:
    """One ``key: value`` of a mapping, with the key's line."""

    key: str
    line: int
    node: yaml.Node


@dataclass(frozen=True)
class Stage:
    """A stage as written: checked for shape, values still YAML nodes.

    Attributes
    ----------
    name : str
    line : int
        Line of the stage's first key.
    command : tuple of str, optional
        The ``audiomill`` command path, e.g. ``("dataset", "verify")``.
    call : str, optional
        ``module:function`` for a Python stage.
    description : str
    args, options, kwargs, when, inputs, outputs : yaml.Node or tuple of Entry, optional
        ``options`` and ``kwargs`` as entries (key, line, value node); the others as nodes.
    needs : tuple of str
        Earlier stages this one depends on beyond those found from ``outputs``.
    """

    name: str
    line: int
    command: tuple[str, ...] | None
    call: str | None
    description: str
    args: yaml.SequenceNode | None
    options: tuple[Entry, ...]
    kwargs: tuple[Entry, ...]
    when: yaml.Node | None
    outputs: yaml.Node | None
    needs: tuple[str, ...]
    inputs: yaml.Node | None = None


@dataclass(frozen=True)
class Workflow:
    """A checked workflow file.

    Attributes
    ----------
    source : str
        The file as the user named it (prefix of every error).
    name : str
        The ``name:`` key, else the file's stem.
    description : str
    vars : tuple of Entry
        Variable defaults, in file order.
    state : yaml.Node, optional
        The ``state:`` value (a path that may use variables).
    stages : tuple of Stage
    """

    source: str
    name: str
    description: str
    vars: tuple[Entry, ...]
    state: yaml.Node | None
    stages: tuple[Stage, ...]

    def stage_names(self) -> list[str]:
        """Names of the stages in order."""
        return [s.name for s in self.stages]

    def error(self, message: str, node: yaml.Node | int | None = None) -> WorkflowError:
        """A `WorkflowError` in this file at ``node`` (or a 1-based line number)."""
        return _error(self.source, message, node)


def line_of(node: yaml.Node) -> int:
    """1-based line where ``node`` starts."""
    return node.start_mark.line + 1


def scalar_value(node: yaml.ScalarNode) -> object:
    """The Python value of a scalar node (str, int, float, bool, None, date)."""
    return _CONSTRUCTOR.construct_object(node)


def _error(source: str, message: str, node: yaml.Node | int | None) -> WorkflowError:
    line = line_of(node) if isinstance(node, yaml.Node) else node
    return WorkflowError(message, source, line)


def load_workflow(path: str | Path, root: Command | None = None) -> Workflow:
    """Read and check a workflow file.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    root : Command, optional
        The ``audiomill`` command tree; when given, stage commands and option names are checked
        against it.

    Raises
    ------
    WorkflowError
        With the file, line and key at fault.
    FileNotFoundError
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise WorkflowError("not a text (UTF-8) file", source) from None
    try:
        doc = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise _error(source, f"not valid YAML: {exc.problem}", line) from None
    if not isinstance(doc, yaml.MappingNode):
        raise _error(source, "a workflow is a mapping with 'stages:' (and name, vars, ...)", doc)
    top = {e.key: e for e in entries(source, doc, "the workflow", TOP_KEYS)}
    name = _text(source, top.get("name"), "name") or Path(path).stem
    if "name" in top and not NAME_RE.match(name):
        raise _error(source, f"name {name!r}: use lowercase letters, digits, - and _",
                     top["name"].line)  # fmt: skip
    variables = ()
    if "vars" in top:
        variables = entries(source, top["vars"].node, "vars")
        for v in variables:
            if not VAR_RE.match(v.key):
                raise _error(source, f"vars: bad variable name {v.key!r}", v.line)
            if not isinstance(v.node, yaml.ScalarNode):
                raise _error(source, f"vars: {v.key!r} must be a single value", v.node)
    if "stages" not in top:
        raise _error(source, "missing key 'stages' (a list of stages)", doc)
    stages_node = top["stages"].node
    if not isinstance(stages_node, yaml.SequenceNode) or not stages_node.value:
        raise _error(source, "'stages' must be a non-empty list of stages", stages_node)
    stages: list[Stage] = []
    for node in stages_node.value:
        stage = _stage(source, node, root, [s.name for s in stages])
        stages.append(stage)
    return Workflow(
        source=source,
        name=name,
        description=_text(source, top.get("description"), "description"),
        vars=tuple(variables),
        state=top["state"].node if "state" in top else None,
        stages=tuple(stages),
    )


def entries(
    source: str, node: yaml.Node, what: str, allowed: tuple[str, ...] | None = None
) -> tuple[Entry, ...]:
    """The entries of a mapping node, refusing non-mappings, odd keys and repeated keys."""
    if not isinstance(node, yaml.MappingNode):
        raise _error(source, f"{what} must be a mapping (key: value)", node)
    seen: dict[str, int] = {}
    out = []
    for key_node, value_node in node.value:
        key = scalar_value(key_node) if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            raise _error(source, f"{what}: keys must be names", key_node)
        if key in seen:
            message = f"{what}: key {key!r} repeated (first on line {seen[key]})"
            raise _error(source, message, key_node)
        if allowed is not None and key not in allowed:
            raise _error(
                source, f"{what}: unknown key {key!r} (allowed: {', '.join(allowed)})", key_node
            )
        seen[key] = line_of(key_node)
        out.append(Entry(key, line_of(key_node), value_node))
    return tuple(out)


def _text(source: str, entry: Entry | None, what: str) -> str:
    if entry is None:
        return ""
    value = scalar_value(entry.node) if isinstance(entry.node, yaml.ScalarNode) else None
    if not isinstance(value, str):
        raise _error(source, f"{what} must be text", entry.node)
    return value


def _stage(source: str, node: yaml.Node, root: Command | None, before: list[str]) -> Stage:
    if not isinstance(node, yaml.MappingNode):
        raise _error(source, "a stage is a mapping with 'name' and 'command' or 'call'", node)
    first = entries(source, node, "stage")
    keys = {e.key: e for e in first}
    name = _text(source, keys.get("name"), "stage name") if "name" in keys else ""
    label = f"stage {name!r}" if name else f"stage {len(before) + 1}"
    for e in first:
        if e.key not in STAGE_KEYS:
            raise _error(source, f"{label}: unknown key {e.key!r} (allowed: "
                         f"{', '.join(STAGE_KEYS)})", e.line)  # fmt: skip
    if not name:
        raise _error(source, f"{label}: missing key 'name'", node)
    if not NAME_RE.match(name):
        raise _error(source, f"{label}: name must use lowercase letters, digits, - and _",
                     keys["name"].node)  # fmt: skip
    if name in before:
        raise _error(source, f"{label}: the name is used by an earlier stage", keys["name"].node)
    if ("command" in keys) == ("call" in keys):
        raise _error(source, f"{label}: give exactly one of 'command' (an audiomill command) "
                     "or 'call' (module:function)", node)  # fmt: skip
    command = call = None
    cmd_obj = None
    if "command" in keys:
        text = _text(source, keys["command"], f"{label}: command")
        command = tuple(text.split())
        if "kwargs" in keys:
            raise _error(source, f"{label}: 'kwargs' goes with 'call'; a command takes 'args' "
                         "and 'options'", keys["kwargs"].line)  # fmt: skip
        if root is not None:
            try:
                cmd_obj = find_command(root, command)
            except LookupError as exc:
                raise _error(source, f"{label}: {exc}", keys["command"].node) from None
    else:
        call = _text(source, keys["call"], f"{label}: call")
        for bad in ("args", "options"):
            if bad in keys:
                raise _error(source, f"{label}: {bad!r} goes with 'command'; a call takes "
                             "'kwargs'", keys[bad].line)  # fmt: skip
    args = keys["args"].node if "args" in keys else None
    if args is not None and not (
        isinstance(args, yaml.SequenceNode)
        and all(isinstance(a, yaml.ScalarNode) for a in args.value)
    ):
        raise _error(source, f"{label}: 'args' must be a list of values", args)
    options = ()
    if "options" in keys:
        options = entries(source, keys["options"].node, f"{label}: options")
    if cmd_obj is not None:
        for opt in options:
            try:
                option_param(cmd_obj, opt.key)
            except LookupError as exc:
                raise _error(source, f"{label}: {exc}", opt.line) from None
    kwargs = entries(source, keys["kwargs"].node, f"{label}: kwargs") if "kwargs" in keys else ()
    if call is not None:
        _check_call(source, label, call, keys["call"].node, kwargs)
    when = keys["when"].node if "when" in keys else None
    if when is not None and not isinstance(when, yaml.ScalarNode):
        raise _error(source, f"{label}: 'when' must be a single value", when)
    outputs, inputs = (_paths(source, label, keys.get(k)) for k in ("outputs", "inputs"))
    return Stage(
        name=name,
        line=line_of(node),
        command=command,
        call=call,
        description=_text(source, keys.get("description"), f"{label}: description"),
        args=args,
        options=options,
        kwargs=kwargs,
        when=when,
        outputs=outputs,
        needs=_needs(source, label, keys.get("needs"), before),
        inputs=inputs,
    )


def _paths(source: str, label: str, entry: Entry | None) -> yaml.Node | None:
    """The node of ``outputs`` or ``inputs``: one path, or a list of them."""
    if entry is None:
        return None
    node = entry.node
    if isinstance(node, yaml.ScalarNode) or (
        isinstance(node, yaml.SequenceNode)
        and all(isinstance(item, yaml.ScalarNode) for item in node.value)
    ):
        return node
    raise _error(source, f"{label}: {entry.key!r} must be a path or a list of paths", node)


def _check_call(
    source: str, label: str, call: str, node: yaml.Node, kwargs: tuple[Entry, ...]
) -> None:
    """Refuse a ``call`` whose module or function is not there, or whose ``kwargs`` the
    function cannot take (names it has no parameter for, required parameters left out)."""
    if not CALL_RE.match(call):
        raise _error(source, f"{label}: call must look like 'package.module:function'", node)
    module = call.split(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _error(source, f"{label}: no Python module {module!r}", node)
    try:
        function = import_call(call)
    except LookupError as exc:
        raise _error(source, f"{label}: {exc}", node) from None
    problem = kwargs_problem(function, [e.key for e in kwargs])
    if problem is not None:
        message, key = problem
        line = next((e.line for e in kwargs if e.key == key), None)
        raise _error(source, f"{label}: {message}", line or node)


def import_call(call: str) -> Callable[..., Any]:
    """The function that ``module:function`` names, importing its module.

    Raises
    ------
    LookupError
        When the module cannot be imported (with the error it raised) or has no such function.
    """
    module, _, name = call.partition(":")
    try:
        found = importlib.import_module(module)
    except Exception as exc:  # any error of the module's own code, reported as it is
        raise LookupError(
            f"importing module {module!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    function = getattr(found, name, None)
    if not callable(function):
        raise LookupError(f"module {module!r} has no function {name!r}")
    return function


_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def kwargs_problem(
    function: Callable[..., Any], names: Iterable[str]
) -> tuple[str, str | None] | None:
    """What keeps ``function`` from being called with keyword arguments ``names``, if anything.

    Parameters
    ----------
    function : callable
    names : iterable of str
        The keyword arguments a stage gives.

    Returns
    -------
    tuple or None
        The message and the keyword argument at fault (None for a missing one); None when the
        call is fine, or when the function's signature cannot be read.
    """
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return None
    given = list(names)
    what = f"kwargs: {getattr(function, '__name__', 'the function')}()"
    required = [p for p in params if p.default is inspect.Parameter.empty]
    for p in required:
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            return f"{what} needs positional-only {p.name!r}, which kwargs cannot give", None
    takes = [p.name for p in params if p.kind in _NAMED]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        unknown = [key for key in given if key not in takes]
        if unknown:
            known = ", ".join(takes) or "none"
            return f"{what} takes no argument {unknown[0]!r} (it takes: {known})", unknown[0]
    missing = [p for p in required if p.kind in _NAMED and p.name not in given]
    if not missing:
        return None
    return f"{what} needs {missing[0].name!r} (it has no default)", None


def _needs(source: str, label: str, entry: Entry | None, before: list[str]) -> tuple[str, ...]:
    if entry is None:
        return ()
    node = entry.node
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    names = []
    for item in items:
        value = scalar_value(item) if isinstance(item, yaml.ScalarNode) else None
        if not isinstance(value, str):
            raise _error(source, f"{label}: 'needs' lists stage names", item)
        if value not in before:
            raise _error(source, f"{label}: needs {value!r}, which is not an earlier stage "
                         f"(earlier: {', '.join(before) or 'none'})", item)  # fmt: skip
        names.append(value)
    return tuple(names)


def find_command(root: Command, path: tuple[str, ...]) -> Command:
    """The command at ``path`` below ``root`` (e.g. ``("dataset", "verify")``).

    Raises
    ------
    LookupError
        Naming the commands available where the path goes wrong.
    """
    if not path:
        raise LookupError("the command is empty")
    if path[0] in FORBIDDEN_COMMANDS:
        raise LookupError(f"{path[0]!r} cannot run inside a workflow")
    ctx = typer.Context(root)
    node = root
    for depth, word in enumerate(path):
        here = " ".join(path[:depth]) or "audiomill"
        if not _is_group(node):
            raise LookupError(f"{here!r} has no sub-command {word!r}")
        sub = node.get_command(ctx, word)
        if sub is None:
            known = ", ".join(node.list_commands(ctx))
            raise LookupError(f"unknown command {' '.join(path)!r}: {here} has {known}")
        node = sub
    if _is_group(node):
        known = ", ".join(node.list_commands(ctx))
        raise LookupError(f"{' '.join(path)!r} needs a sub-command: {known}")
    return node


def option_param(command: Command, key: str) -> Option:
    """The option of ``command`` that ``key`` names (``shard_clips`` or ``shard-clips``).

    Raises
    ------
    LookupError
        Naming the options the command has.
    """
    flag = "--" + key.replace("_", "-")
    options = [p for p in command.params if getattr(p, "param_type_name", "") == "option"]
    for p in options:
        if flag in p.opts:
            return p
    known = ", ".join(p.opts[0].lstrip("-") for p in options if p.opts[0].startswith("--"))
    raise LookupError(f"unknown option {key!r} for {command.name!r} (options: {known})")


def args_problem(command: Command, given: int) -> str | None:
    """Why ``command`` would refuse ``given`` positional values, or None when it takes them.

    Returns
    -------
    str or None
        The number of values the command's arguments take and their names, e.g. ``'evaluate'
        takes 2 args (RUN DATASET), got 1``.
    """
    arguments = command_arguments(command)
    least = sum(max(p.nargs, 1) for p in arguments if p.required)
    variadic = any(p.nargs == -1 for p in arguments)
    most = sum(max(p.nargs, 0) for p in arguments)
    if least <= given and (variadic or given <= most):
        return None
    if variadic:
        count = f"at least {least}"
    elif least == most:
        count = str(least)
    else:
        count = f"{least} to {most}"
    noun = "arg" if count == "1" else "args"
    names = " ".join(_argument_name(p) for p in arguments) or "none"
    return f"{command.name!r} takes {count} {noun} ({names}), got {given}"


def missing_options(command: Command, given: set[str]) -> list[Option]:
    """The options ``command`` requires that are not among ``given`` (parameter names, such as
    ``out_dir`` for ``--out``), nor set through their environment variables."""
    return [
        p
        for p in command.params
        if getattr(p, "param_type_name", "") == "option"
        and p.required
        and p.name not in given
        and not any(os.environ.get(var) for var in _envvars(p))
    ]


def _envvars(param: Option) -> list[str]:
    envvar = getattr(param, "envvar", None)
    return [] if not envvar else [envvar] if isinstance(envvar, str) else list(envvar)


def command_arguments(command: Command) -> list[Any]:
    """The positional arguments of ``command``, in order."""
    return [p for p in command.params if getattr(p, "param_type_name", "") == "argument"]


def _argument_name(param: Option) -> str:
    name = param.name.upper() + ("..." if param.nargs == -1 else "")
    return name if param.required else f"[{name}]"


def value_problem(param: Option, text: str) -> str | None:
    """Why ``param`` would refuse ``text`` (one value of the option, as on the command line), or
    None when it takes it.

    The value is converted as the command would convert it: Typer's coercion for Typer's
    parameters, the click type's for click's. Paths and files are taken as they are: what a stage
    names may be made by an earlier stage.

    Returns
    -------
    str or None
        The type the option expects, the value and what the conversion said, e.g. ``expects
        <int>, got 'sixteen': Input should be a valid integer, ...``.
    """
    typer_param = hasattr(param, "get_runtime_param")
    if takes_paths(param):
        return None
    value = (text,) if param.multiple else text
    try:
        if typer_param:
            param.get_runtime_param().coerce(value, param=param, ctx=None)
        else:
            param.type_cast_value(None, value)
    except Exception as exc:  # BadParameter, of the click that Typer vendors or of click
        if not callable(getattr(exc, "format_message", None)):
            raise
        expected = param.display_type(None) if typer_param else param.type.name
        return f"expects {expected}, got {text!r}: {exc}"
    return None


def takes_paths(param: Option) -> bool:
    """Whether ``param`` is declared to take paths (Typer's Path or file types, click's Path
    or File)."""
    if hasattr(param, "get_runtime_param"):
        return param.type_descriptor.is_path or param.type_descriptor.is_file
    return param.type.name in ("path", "filename")


def _is_group(command: Command) -> bool:
    return callable(getattr(command, "list_commands", None))
