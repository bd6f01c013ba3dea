"""Resolve a checked workflow: substitute variables, build each stage's argv, digest it.

Substitution happens on the YAML nodes, so an unknown variable is reported at the line that
uses it. A value that is exactly ``${name}`` keeps the variable's type (``workers: ${workers}``
stays an integer, ``when: ${flag}`` a boolean); inside longer text the value is written out
(booleans as ``true``/``false``). An empty value followed by ``/`` (``${work}/dataset`` with
``work`` empty) is an error, as it would make a path under the filesystem root.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass, replace
from typing import Any

import yaml

from modeling.runs import BEST_WEIGHTS, LAST_WEIGHTS, RUN_CONFIG
from schemas.dataset import MANIFEST
from workflows.workflow_schema import (
    VAR_RE,
    Command,
    Entry,
    Option,
    Stage,
    Workflow,
    WorkflowError,
    args_problem,
    command_arguments,
    entries,
    find_command,
    missing_options,
    option_param,
    scalar_value,
    takes_paths,
    value_problem,
)

_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_WILDCARD = re.compile(r"[*?\[]")
# What the audiomill commands read, by parameter name: the inputs of a command stage that
# declares no ``inputs:``. Other parameters are parameters or outputs; embed's dataset is both
# read and written, so it is followed through the records of the stages that make it.
COMMAND_INPUTS: dict[str, tuple[str, ...]] = {
    "ingest": ("segments", "classes", "audio_root"),
    "segments inspect": ("file", "classes", "audio_root"),
    "prepare folder": ("root", "labels_csv"),
    "prepare audioset": ("csvs", "classes", "audio_root"),
    "prepare urbansound8k": ("root",),
    "prepare fsd2019": ("root",),
    "prepare whale": ("root",),
    "import audioset-tfrecord": ("pattern", "classes"),
    "import packed-h5": ("path", "classes", "segments"),
    "embed": ("checkpoint", "pca_params"),
    "embed-files": ("files", "checkpoint", "pca_params"),
    "train": ("dataset",),
    "sweep": ("dataset",),
    "evaluate": ("run", "dataset"),
    "index": ("dataset",),
    "report": ("dataset",),
    "search": ("run", "dataset"),
    "dataset verify": ("dataset",),
    "predict": ("run", "inputs", "dataset", "checkpoint", "pca_params"),
    "export": ("run",),
}
# The datasets and runs the audiomill commands write, by parameter name, with the kind of folder
# it names (a key of :data:`FOLDER_FILES`): their files are the workflow's own doing, not inputs
# that changed (see :func:`_without_made_inputs`).
COMMAND_WRITES: dict[str, dict[str, str]] = {
    "ingest": {"out_path": "dataset"},
    "import audioset-tfrecord": {"out_path": "dataset"},
    "import packed-h5": {"out_path": "dataset"},
    "embed": {"dataset": "dataset"},
    "train": {"out_dir": "run"},
}
# The files that stand for the folder a parameter names: a dataset changes with its manifest
# (rewritten by every commit of shards or embeddings), a run with its settings and weights.
FOLDER_FILES: dict[str, tuple[str, ...]] = {
    "dataset": (MANIFEST,),
    "run": (RUN_CONFIG, BEST_WEIGHTS, LAST_WEIGHTS),
}
# Parameters of the audiomill commands that take paths though declared as text (a dataset may
# also be a URL): with those declared as paths, their values count in a stage's digest as
# absolute paths, so ``out/run``, ``/abs/out/run`` and ``/abs/out/run/`` are the same parameter.
PATH_PARAMS = frozenset(
    {"audio_root", "checkpoint", "classes", "cookies", "csvs", "dataset", "file", "files",
     "inputs", "labels_csv", "out", "out_dir", "out_path", "path", "pattern", "pca_params",
     "root", "run", "segments"}
)  # fmt: skip
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0", "none", "null", "")


@dataclass(frozen=True)
class ResolvedStage:
    """A stage ready to run.

    Attributes
    ----------
    stage : Stage
        The stage as written.
    enabled : bool
        False when its ``when:`` resolved to an empty or false value.
    argv : tuple of str
        For a command stage: the command path, then the options, then the positional args
        (what follows ``audiomill``). Empty for a call stage.
    kwargs : dict
        For a call stage: the keyword arguments.
    outputs : tuple of str, optional
        The declared outputs; None when the stage declares none.
    digest : str
        sha256 of the resolved command, its local paths absolute (see :data:`PATH_PARAMS`), or
        of the call and kwargs: what "same parameters" means.
    inputs : tuple of str
        Files, folders and local glob patterns the stage reads, whose changes make it stale:
        its ``inputs:``, else, for an ``audiomill`` command, the local paths given to the
        options and arguments in :data:`COMMAND_INPUTS` (a dataset by its manifest, a run by its
        settings and weights: :data:`FOLDER_FILES`), less those the workflow makes.
    """

    stage: Stage
    enabled: bool
    argv: tuple[str, ...]
    kwargs: dict[str, Any]
    outputs: tuple[str, ...] | None
    digest: str
    inputs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The stage's name."""
        return self.stage.name

    def describe(self) -> str:
        """The resolved command line, or the Python call, as one line of text."""
        if self.stage.call:
            args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
            return f"{self.stage.call}({args})"
        return shlex.join(["audiomill", *self.argv])

    def references(self) -> list[str]:
        """Every text value the stage is given (to find which outputs it reads)."""
        found: list[str] = []
        _strings([*self.argv, self.kwargs, *self.inputs], found)
        return found


@dataclass(frozen=True)
class Plan:
    """A resolved workflow.

    Attributes
    ----------
    workflow : Workflow
    stages : tuple of ResolvedStage
    state : str, optional
        The resolved ``state:`` path, if the file gives one.
    depends : dict
        For each stage, the earlier stages that make it stale when they re-make their outputs:
        those named in ``needs``, those whose declared outputs it mentions (a path equal to,
        inside or containing one), and every earlier stage that declares no ``outputs`` at all.
    """

    workflow: Workflow
    stages: tuple[ResolvedStage, ...]
    state: str | None
    depends: dict[str, tuple[str, ...]]


class Variables:
    """Values of ``${name}``: the file's ``vars``, overridden by ``--set``; and ``${env:NAME}``.

    ``--set`` values are taken literally (no substitution) and converted to the type of the
    variable's default: true/false/yes/no/on/off/1/0 for a boolean, a number for a number,
    text otherwise. Defaults may use other variables; a loop is an error.
    """

    def __init__(self, workflow: Workflow, overrides: dict[str, str]) -> None:
        self.workflow = workflow
        self._defaults = {e.key: e for e in workflow.vars}
        self._values: dict[str, Any] = {}
        self._resolving: list[str] = []
        for key, text in overrides.items():
            if key not in self._defaults:
                raise WorkflowError(
                    f"--set {key}: not a variable of this workflow (vars: {self._names()})",
                    workflow.source,
                )
            default = self._defaults[key]
            self._values[key] = _coerce(workflow, default, text)

    def _names(self) -> str:
        return ", ".join(self._defaults) or "none"

    def value(self, name: str, node: yaml.Node) -> Any:
        """The value of variable ``name``, used at ``node`` (for errors)."""
        if name.startswith("env:"):
            key = name[4:]
            if key not in os.environ:
                raise self.workflow.error(f"environment variable {key!r} is not set", node)
            return os.environ[key]
        if not VAR_RE.match(name):
            raise self.workflow.error(f"bad variable reference ${{{name}}}", node)
        if name not in self._defaults:
            raise self.workflow.error(
                f"unknown variable {name!r} (vars: {self._names()}; write $${{ for a literal ${{)",
                node,
            )
        if name not in self._values:
            if name in self._resolving:
                loop = " -> ".join([*self._resolving, name])
                raise self.workflow.error(f"variables refer to each other: {loop}", node)
            self._resolving.append(name)
            try:
                self._values[name] = self.resolve(self._defaults[name].node)
            finally:
                self._resolving.pop()
        return self._values[name]

    def resolve(self, node: yaml.Node) -> Any:
        """The Python value of ``node`` with every ``${...}`` substituted."""
        if isinstance(node, yaml.SequenceNode):
            return [self.resolve(n) for n in node.value]
        if isinstance(node, yaml.MappingNode):
            items = entries(self.workflow.source, node, "a value")
            return {e.key: self.resolve(e.node) for e in items}
        value = scalar_value(node)
        return self._substitute(value, node) if isinstance(value, str) else value

    def _substitute(self, text: str, node: yaml.Node) -> Any:
        refs = list(_REF.finditer(text))
        if len(refs) == 1 and refs[0].group(1) is not None and refs[0].span() == (0, len(text)):
            return self.value(refs[0].group(1).strip(), node)
        parts, pos = [], 0
        for m in refs:
            parts.append(text[pos : m.start()])
            pos = m.end()
            if m.group(0) == "$${":
                parts.append("${")
            elif m.group(1) is None:
                raise self.workflow.error(f"unterminated '${{' in {text!r}", node)
            else:
                name = m.group(1).strip()
                value = self.value(name, node)
                if value is None:
                    raise self.workflow.error(
                        f"variable {name!r} has no value: pass --set {name}=...", node
                    )
                if not as_text(value).strip() and text.startswith("/", m.end()):
                    raise self.workflow.error(
                        f"variable {name!r} is empty, but {text!r} uses it as a folder: "
                        f"pass --set {name}=DIR (. for the current one)",
                        node,
                    )
                parts.append(as_text(value))
        parts.append(text[pos:])
        return "".join(parts)


def as_text(value: Any) -> str:
    """A value as it appears on a command line (booleans as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def is_true(value: Any) -> bool:
    """Whether a ``when:`` value lets its stage run (empty, false, no, off, 0, null do not)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE
    return bool(value)


def _coerce(workflow: Workflow, default: Entry, text: str) -> Any:
    current = scalar_value(default.node)
    name = default.key
    if isinstance(current, bool):
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise WorkflowError(f"--set {name}={text}: {name} is true or false", workflow.source)
    for kind in (int, float):
        if isinstance(current, kind):
            try:
                return kind(text)
            except ValueError:
                raise WorkflowError(
                    f"--set {name}={text}: {name} is a number like {current}", workflow.source
                ) from None
    return text


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["key=value", ...]`` from ``--set`` as a dict (later ones win).

    Raises
    ------
    WorkflowError
        For an item without ``=``.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise WorkflowError(f"--set {item!r}: write KEY=VALUE")
        out[key.strip()] = value
    return out


def resolve_workflow(
    workflow: Workflow, overrides: dict[str, str], root: Command | None = None
) -> Plan:
    """Substitute variables into every stage and build its argv or kwargs.

    Parameters
    ----------
    workflow : Workflow
        From `workflows.workflow_schema.load_workflow`.
    overrides : dict
        ``--set`` values by variable name.
    root : Command, optional
        The ``audiomill`` command tree: tells flags (``true`` -> ``--x``, ``false`` ->
        ``--no-x``) from options that take values, and which options repeat.

    Raises
    ------
    WorkflowError
        With the line of the value at fault.
    """
    variables = Variables(workflow, overrides)
    stages = tuple(_resolve_stage(workflow, s, variables, root) for s in workflow.stages)
    written = [path for s in workflow.stages for path in _written(s, variables, root)]
    stages = _without_made_inputs(stages, written)
    state = None
    if workflow.state is not None:
        state = variables.resolve(workflow.state)
        if not isinstance(state, str) or not state:
            raise workflow.error("'state' must be a file path", workflow.state)
    return Plan(workflow, stages, state, dependencies(stages))


def _resolve_stage(
    wf: Workflow, stage: Stage, variables: Variables, root: Command | None
) -> ResolvedStage:
    enabled = stage.when is None or is_true(variables.resolve(stage.when))
    argv: list[str] = []
    kwargs: dict[str, Any] = {}
    if stage.command:
        command = find_command(root, stage.command) if root is not None else None
        argv = list(stage.command)
        counted = list(stage.command)
        given = set()
        for opt in stage.options:
            param = option_param(command, opt.key) if command is not None else None
            words = _option_words(wf, stage, opt, param, variables.resolve(opt.node))
            argv += words
            counted += [_counted(param, w) if i % 2 else w for i, w in enumerate(words)]
            if words and param is not None:
                given.add(param.name)
        args = _args(stage, variables)
        if command is not None:
            _check_args(wf, stage, command, args)
            _check_options(wf, stage, command, given)
        argv += args
        counted += _counted_args(command, args)
        payload: dict[str, Any] = {"command": counted}
    else:
        kwargs = {e.key: variables.resolve(e.node) for e in stage.kwargs}
        payload = {"call": stage.call, "kwargs": kwargs}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return ResolvedStage(
        stage=stage,
        enabled=enabled,
        argv=tuple(argv),
        kwargs=kwargs,
        outputs=_outputs(wf, stage, variables),
        digest=digest,
        inputs=_inputs(wf, stage, variables, root),
    )


def _args(stage: Stage, variables: Variables) -> list[str]:
    """The stage's positional ``args`` as command-line words (null values left out)."""
    values = [variables.resolve(n) for n in (stage.args.value if stage.args is not None else ())]
    return [as_text(value) for value in values if value is not None]


def _counted(param: Option | None, text: str) -> str:
    """One value of ``param`` as the digest counts it: a local path absolute and without a
    trailing slash (a URL as it is), when ``param`` takes paths."""
    takes = param is not None and (param.name in PATH_PARAMS or takes_paths(param))
    return os.path.abspath(text) if takes and text and "://" not in text else text


def _counted_args(command: Command | None, args: list[str]) -> list[str]:
    """Positional ``args`` as the digest counts them (see :func:`_counted`)."""
    if command is None:
        return args
    taken_by = _assign_arguments(command_arguments(command), args)
    return [_counted(param, value) for param, taken in taken_by for value in taken]


def _check_options(wf: Workflow, stage: Stage, command: Command, given: set[str]) -> None:
    """Refuse, at the stage's first line, a stage without an option ``command`` requires
    (``given``: the parameter names of the options it sets to a value)."""
    missing = missing_options(command, given)
    if missing:
        noun = "option" if len(missing) == 1 else "options"
        names = ", ".join(f"{p.opts[0][2:].replace('-', '_')!r} ({p.opts[0]})" for p in missing)
        command_name = " ".join(stage.command)
        raise wf.error(f"stage {stage.name!r}: {command_name!r} needs {noun} {names}", stage.line)


def _check_args(wf: Workflow, stage: Stage, command: Command, args: list[str]) -> None:
    """Refuse, at the stage's ``args`` (or its first line), more or fewer positional values
    than ``command`` takes (see :func:`workflows.workflow_schema.args_problem`)."""
    problem = args_problem(command, len(args))
    if problem is not None:
        where = stage.args if stage.args is not None else stage.line
        raise wf.error(f"stage {stage.name!r}: {problem}", where)


def _without_made_inputs(
    stages: tuple[ResolvedStage, ...], written: list[str]
) -> tuple[ResolvedStage, ...]:
    """Leave out of the inputs a command stage reads without declaring them those equal to or
    inside a stage's declared outputs or in ``written``: the workflow makes them, so their
    changes are followed through the records of the stages that make them (a later ``embed``
    rewriting the manifest that ``dataset verify`` reads does not make ``verify`` stale)."""
    made = [norm_path(p) for p in [*written, *(o for s in stages for o in s.outputs or ())]]
    return tuple(
        s if s.stage.inputs is not None
        else replace(s, inputs=tuple(p for p in s.inputs if not _inside_any(norm_path(p), made)))
        for s in stages
    )  # fmt: skip


def _inside_any(path: str, folders: list[str]) -> bool:
    """Whether ``path`` is one of ``folders`` or lies inside one."""
    return any(path == folder or path.startswith(folder + "/") for folder in folders)


def _option_words(
    wf: Workflow, stage: Stage, opt: Entry, param: Option | None, value: Any
) -> list[str]:
    """Command-line words for one option: ``--key value``; flags bare; lists repeated.

    Raises
    ------
    WorkflowError
        At the option's line, for a value the option does not take: a flag given a value, a
        list for a single value, or a value its type refuses (see
        :func:`workflows.workflow_schema.value_problem`).
    """
    flag = "--" + opt.key.replace("_", "-")
    where = f"stage {stage.name!r}: option {opt.key!r}"
    if value is None or value == "":
        return []
    if isinstance(value, bool):
        if param is not None and not param.is_flag:
            raise wf.error(f"{where} takes a value, not {as_text(value)}", opt.node)
        if value:
            return [flag]
        return [param.secondary_opts[0]] if param is not None and param.secondary_opts else []
    if param is not None and param.is_flag:
        raise wf.error(f"{where} is a flag: write true or false", opt.node)
    if isinstance(value, list):
        if param is not None and not param.multiple:
            raise wf.error(f"{where} takes one value, not a list", opt.node)
        texts = [as_text(item) for item in value if item is not None]
    else:
        texts = [as_text(value)]
    for text in texts if param is not None else ():
        problem = value_problem(param, text)
        if problem is not None:
            raise wf.error(f"{where} {problem}", opt.node)
    return [word for text in texts for word in (flag, text)]


def _outputs(wf: Workflow, stage: Stage, variables: Variables) -> tuple[str, ...] | None:
    if stage.outputs is None:
        return None
    value = variables.resolve(stage.outputs)
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str) or not item:
            raise wf.error(f"stage {stage.name!r}: outputs must be paths", stage.outputs)
    return tuple(items)


def _inputs(
    wf: Workflow, stage: Stage, variables: Variables, root: Command | None
) -> tuple[str, ...]:
    """The stage's ``inputs:`` (empty values left out), else what its command reads."""
    if stage.inputs is None:
        if not stage.command or root is None:
            return ()
        found = _command_inputs(find_command(root, stage.command), stage, variables)
        return tuple(p for p in found if "://" not in p)
    value = variables.resolve(stage.inputs)
    items = [v for v in (value if isinstance(value, list) else [value]) if v not in (None, "")]
    for item in items:
        if not isinstance(item, str):
            raise wf.error(f"stage {stage.name!r}: inputs must be paths", stage.inputs)
        if "://" in item and _WILDCARD.search(item):
            raise wf.error(f"stage {stage.name!r}: input {item!r}: a pattern works for local "
                           "files only; give the folder (every file below it counts)",
                           stage.inputs)  # fmt: skip
    return tuple(dict.fromkeys(items))


def _command_inputs(command: Command, stage: Stage, variables: Variables) -> list[str]:
    """The values ``stage`` gives to the parameters of ``command`` in :data:`COMMAND_INPUTS`."""
    wanted = COMMAND_INPUTS.get(" ".join(stage.command or ()), ())
    given = _command_values(command, stage, variables, wanted)
    return list(dict.fromkeys(path for name, value in given for path in _read_paths(name, value)))


def _written(stage: Stage, variables: Variables, root: Command | None) -> list[str]:
    """The files of the datasets and runs a command stage writes (:data:`COMMAND_WRITES`)."""
    kinds = COMMAND_WRITES.get(" ".join(stage.command or ()), {})
    if not kinds or root is None:
        return []
    given = _command_values(find_command(root, stage.command), stage, variables, tuple(kinds))
    return [path for name, value in given for path in _read_paths(kinds[name], value)]


def _command_values(
    command: Command, stage: Stage, variables: Variables, wanted: tuple[str, ...]
) -> list[tuple[str, Any]]:
    """``(parameter name, value)`` of the options and arguments ``stage`` gives to the
    parameters of ``command`` named in ``wanted``."""
    if not wanted:
        return []
    given = [(option_param(command, opt.key).name, variables.resolve(opt.node))
             for opt in stage.options]  # fmt: skip
    args = [variables.resolve(n) for n in (stage.args.value if stage.args is not None else ())]
    taken_by = _assign_arguments(command_arguments(command), args)
    given += [(param.name, taken) for param, taken in taken_by]
    return [(name, value) for name, value in given if name in wanted]


def _read_paths(name: str, value: Any) -> list[str]:
    """The paths read through the value of parameter ``name``: the files of :data:`FOLDER_FILES`
    inside each folder it names, else the paths themselves."""
    paths: list[str] = []
    _strings(value, paths)
    inside = FOLDER_FILES.get(name)
    if inside is None:
        return [p for p in paths if p]
    return [f"{p.rstrip('/')}/{file}" for p in paths if p for file in inside]


def _assign_arguments(arguments: list[Any], values: list[Any]) -> list[tuple[Any, list[Any]]]:
    """Which positional values each argument of a command takes (one each, or the rest for
    one that takes any number)."""
    out, pos = [], 0
    for i, param in enumerate(arguments):
        count = len(values) - pos - (len(arguments) - i - 1) if param.nargs == -1 else 1
        out.append((param, values[pos : pos + max(count, 0)]))
        pos += max(count, 0)
    return out


def dependencies(stages: tuple[ResolvedStage, ...]) -> dict[str, tuple[str, ...]]:
    """For each stage, the earlier stages it depends on (see `Plan.depends`)."""
    deps: dict[str, tuple[str, ...]] = {}
    for i, later in enumerate(stages):
        refs = [norm_path(r) for r in later.references()]
        deps[later.name] = tuple(
            early.name
            for early in stages[:i]
            if early.name in later.stage.needs
            or early.outputs is None
            or any(_overlap(norm_path(o), r) for o in early.outputs for r in refs)
        )
    return deps


def norm_path(path: str) -> str:
    """A path as compared with others: absolute, or a URL without a trailing slash."""
    if "://" in path:
        return path.rstrip("/")
    return os.path.abspath(path)


def _overlap(a: str, b: str) -> bool:
    return a == b or b.startswith(a + "/") or a.startswith(b + "/")


def _strings(value: Any, found: list[str]) -> None:
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, found)
    elif isinstance(value, list | tuple):
        for v in value:
            _strings(v, found)
