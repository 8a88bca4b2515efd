"""The config format: structure checks, variables, scale presets, blocks and repeats,
expanded into a flat list of located layer specs."""

import dataclasses
import difflib
import re

from keras_convx.model_config.expr import ExpressionError, evaluate

FORMAT_VERSION = 1
MAX_REPEAT = 1000
MAX_LAYERS = 20_000
TOP_KEYS = ("version", "name", "description", "variables", "scales", "inputs", "blocks",
            "layers", "outputs", "weights")
ENTRY_KEYS = ("type", "block", "name", "args", "inputs", "repeat", "when")
BLOCK_KEYS = ("params", "layers", "output", "description")
INPUT_KEYS = ("shape", "dtype", "batch_size")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")

# Upgrades from older format versions: {old_version: fn(dict) -> dict of old_version + 1}.
# A change to the format bumps FORMAT_VERSION and adds one function here, so every older
# file keeps loading; files newer than FORMAT_VERSION are refused with a clear message.
UPGRADES = {}


@dataclasses.dataclass
class LayerSpec:
    type: str
    name: str
    args: dict
    inputs: list
    path: tuple           # key path of the entry (for located errors)
    call_args: dict = dataclasses.field(default_factory=dict)


def hint(word, options):
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _check_keys(data, allowed, path, located, what):
    if not isinstance(data, dict):
        raise located.error(path, f"{what} must be a mapping, got {type(data).__name__}")
    for key in data:
        if key not in allowed:
            raise located.error(path + (key,), f"unknown key in {what}{hint(key, allowed)}")


class Expander:
    """Turns the validated top-level config into `LayerSpec`s."""

    def __init__(self, data, located, overrides=None, scale=None):
        self.located = located
        self.data = self._upgrade(data)
        _check_keys(self.data, TOP_KEYS, (), located, "the config")
        if "layers" not in self.data:
            raise located.error((), "missing required key 'layers'")
        self.variables = self._variables(overrides or {}, scale)
        self.blocks = self._blocks()
        self.specs = []
        self.names = set()
        self.counter = 0

    def _upgrade(self, data):
        if not isinstance(data, dict):
            extra = ""
            if isinstance(data, str) and "\n" not in data.strip():
                from keras_convx.model_config.loader import zoo_hint

                extra = f": {data.strip()!r} is not a zoo name either {zoo_hint(data.strip())}"
            raise self.located.error((), f"the config must be a mapping, got "
                                         f"{type(data).__name__}{extra}")
        version = data.get("version")
        if version is None:
            raise self.located.error((), f"missing required key 'version' (current: {FORMAT_VERSION})")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self.located.error(("version",), f"version must be a positive int, got {version!r}")
        if version > FORMAT_VERSION:
            raise self.located.error(("version",), f"version {version} is newer than this "
                                     f"keras_convx understands ({FORMAT_VERSION}); upgrade keras_convx")
        while version < FORMAT_VERSION:
            data = UPGRADES[version](data)
            version += 1
        return data

    def _variables(self, overrides, scale):
        variables = self.data.get("variables") or {}
        if not isinstance(variables, dict):
            raise self.located.error(("variables",), "variables must be a mapping")
        for key, value in variables.items():
            if not isinstance(key, str) or not NAME_RE.match(key):
                raise self.located.error(("variables", key), "variable names must be identifiers")
            if not isinstance(value, (int, float, bool, str)) and value is not None:
                raise self.located.error(("variables", key),
                                         f"a variable must be a number, bool or string, got "
                                         f"{type(value).__name__}")
        values = dict(variables)
        scales = self.data.get("scales") or {}
        if not isinstance(scales, dict):
            raise self.located.error(("scales",), "scales must be a mapping of preset -> variables")
        if scale is not None:
            if scale not in scales:
                raise self.located.error(("scales",), f"unknown scale {scale!r}; presets: "
                                         f"{sorted(scales)}{hint(scale, scales)}")
            preset = scales[scale]
            if not isinstance(preset, dict):
                raise self.located.error(("scales", scale), "a scale preset must be a mapping")
            for key, value in preset.items():
                if key not in values:
                    raise self.located.error(("scales", scale, key),
                                             f"unknown variable{hint(key, values)}")
                values[key] = value
        for key, value in overrides.items():
            if key not in values:
                raise self.located.error(("variables",), f"override of unknown variable "
                                         f"{key!r}{hint(key, values)}")
            values[key] = value
        # Derived variables ("${expr}") see the ones declared before them.
        resolved = {}
        for key, value in values.items():
            resolved[key] = self.value(value, resolved, ("variables", key))
        return resolved

    def _blocks(self):
        blocks = self.data.get("blocks") or {}
        if not isinstance(blocks, dict):
            raise self.located.error(("blocks",), "blocks must be a mapping of name -> block")
        for name, block in blocks.items():
            path = ("blocks", name)
            _check_keys(block, BLOCK_KEYS, path, self.located, f"block {name!r}")
            if not isinstance(block.get("layers"), list) or not block["layers"]:
                raise self.located.error(path, "a block needs a non-empty 'layers' list")
            if not isinstance(block.get("params") or {}, dict):
                raise self.located.error(path + ("params",), "params must be a mapping")
        return blocks

    # -- values ---------------------------------------------------------------

    def value(self, value, names, path):
        """Substitutes `$var` and `${expr}` anywhere inside `value`."""
        if isinstance(value, str):
            return self._string(value, names, path)
        if isinstance(value, list):
            return [self.value(v, names, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.value(v, names, path + (k,)) for k, v in value.items()}
        return value

    def _string(self, text, names, path):
        try:
            if text.startswith("${") and text.endswith("}") and text.count("${") == 1:
                return evaluate(text[2:-1], names)
            if text.startswith("$") and NAME_RE.match(text[1:]):
                if text[1:] not in names:
                    raise ExpressionError(f"unknown variable {text[1:]!r}; known: {sorted(names)}")
                return names[text[1:]]
            return re.sub(r"\$\{([^}]*)\}", lambda m: str(evaluate(m.group(1), names)), text)
        except ExpressionError as err:
            raise self.located.error(path, str(err)) from None

    # -- expansion ------------------------------------------------------------

    def expand(self):
        inputs = self.data.get("inputs") or {}
        if not isinstance(inputs, dict) or not inputs:
            raise self.located.error(("inputs",), "inputs must be a non-empty mapping of name -> "
                                     "{shape: [...]}")
        self.inputs = {}
        for name, spec in inputs.items():
            _check_keys(spec, INPUT_KEYS, ("inputs", name), self.located, f"input {name!r}")
            self._claim(name, ("inputs", name))
            self.inputs[name] = self.value(spec, self.variables, ("inputs", name))
        entries = self.data["layers"]
        if not isinstance(entries, list) or not entries:
            raise self.located.error(("layers",), "layers must be a non-empty list")
        last = self._entries(entries, ("layers",), self.variables, {}, [list(inputs)[-1]])
        return self.specs, last

    def _claim(self, name, path):
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise self.located.error(path, f"names must be identifiers (letters, digits, _ . -), "
                                     f"got {name!r}")
        if name in self.names:
            raise self.located.error(path, f"duplicate name {name!r}")
        self.names.add(name)

    def _entries(self, entries, path, names, scope, prev):
        """Expands a layer list; `scope` maps local names to global ones; returns the last name(s)."""
        for i, entry in enumerate(entries):
            epath = path + (i,)
            _check_keys(entry, ENTRY_KEYS, epath, self.located, "a layer entry")
            if ("type" in entry) == ("block" in entry):
                raise self.located.error(epath, "a layer entry needs exactly one of 'type' or 'block'")
            if "when" in entry and not self.value(entry["when"], names, epath + ("when",)):
                if entry.get("name") is not None:  # for the message if something names it
                    scope.setdefault("__skipped__", {})[entry["name"]] = entry["when"]
                continue
            repeat = self.value(entry.get("repeat", 1), names, epath + ("repeat",))
            if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
                raise self.located.error(epath + ("repeat",), f"repeat must be a positive int, got {repeat!r}")
            if repeat > MAX_REPEAT:
                raise self.located.error(epath + ("repeat",), f"repeat {repeat} exceeds the limit {MAX_REPEAT}")
            if len(self.specs) + repeat > MAX_LAYERS:
                raise self.located.error(epath, f"more than {MAX_LAYERS} layers")
            base = self.value(entry.get("name"), names, epath + ("name",))
            for r in range(repeat):
                local = dict(names, i=r)
                if base is not None:
                    name = base if repeat == 1 else f"{base}_{r + 1}"
                else:
                    self.counter += 1
                    kind = entry.get("type") or entry.get("block")
                    name = f"{_snake(kind)}_{self.counter}"
                global_name = scope.get("__prefix__", "") + name
                if r == 0 and "inputs" in entry:
                    inputs = self._inputs(entry["inputs"], local, scope, epath + ("inputs",))
                else:
                    inputs = list(prev)
                if "type" in entry:
                    self._claim(global_name, epath + (("name",) if "name" in entry else ()))
                    args = entry.get("args") or {}
                    if not isinstance(args, dict):
                        raise self.located.error(epath + ("args",), "args must be a mapping")
                    args = self.value(args, local, epath + ("args",))
                    kind = self.value(entry["type"], local, epath + ("type",))
                    self.specs.append(LayerSpec(kind, global_name, args, inputs, epath))
                    scope[name] = global_name
                    prev = [global_name]
                else:
                    prev = [self._block(entry, local, global_name, inputs, epath)]
                    scope[name] = prev[0]
        return prev

    def _block(self, entry, names, instance, inputs, path):
        block_name = entry["block"]
        if block_name not in self.blocks:
            raise self.located.error(path + ("block",), f"unknown block {block_name!r}"
                                     f"{hint(block_name, self.blocks)}")
        block = self.blocks[block_name]
        params = dict(block.get("params") or {})
        given = entry.get("args") or {}
        if not isinstance(given, dict):
            raise self.located.error(path + ("args",), "args must be a mapping")
        for key in given:
            if key not in params:
                raise self.located.error(path + ("args", key), f"unknown parameter of block "
                                         f"{block_name!r}{hint(key, params)}")
        values = dict(self.variables)
        values.update({k: self.value(v, names, ("blocks", block_name, "params", k))
                       for k, v in params.items()})
        values.update({k: self.value(v, names, path + ("args", k)) for k, v in given.items()})
        missing = [k for k, v in values.items() if v is None and k in params]
        if missing:
            raise self.located.error(path + ("args",), f"block {block_name!r} needs parameter(s) "
                                     f"{missing}")
        if "inputs" in entry:  # located at the instance that wrote them, not in the block
            for name in inputs:
                if name not in self.names:
                    raise self.located.error(
                        path + ("inputs",), f"unknown input name {name!r} of block instance "
                        f"{instance!r} (layers and inputs defined before it)"
                        f"{hint(name, self.names)}")
        scope = {"__prefix__": instance + "_", "in": inputs[0]}
        scope.update({f"in{i}": name for i, name in enumerate(inputs)})
        last = self._entries(block["layers"], ("blocks", block_name, "layers"), values, scope, inputs)
        output = block.get("output")
        if output is not None:
            output = self.value(output, values, ("blocks", block_name, "output"))
            skipped = scope.get("__skipped__", {})
            if output not in scope and output in skipped:
                raise self.located.error(
                    path, f"block {block_name!r} outputs {output!r}, which its `when: "
                    f"{skipped[output]}` leaves out in instance {instance!r}; give the block an "
                    f"output every instance has, e.g. output: \"${{'{output}' if ... else "
                    f"'<another layer>'}}\"")
            if output not in scope or output.startswith("__"):
                names = [k for k in scope if not k.startswith("__")]
                raise self.located.error(("blocks", block_name, "output"),
                                         f"unknown layer {output!r} in block{hint(output, names)}")
            return scope[output]
        return last[0]

    def _inputs(self, value, names, scope, path):
        value = self.value(value, names, path)
        items = value if isinstance(value, list) else [value]
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise self.located.error(path, f"inputs must be layer names, got {item!r}")
            out.append(scope.get(item, item if not scope.get("__prefix__") or item in self.names
                                 else scope.get("__prefix__", "") + item))
        return out


def _snake(name):
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", str(name)).lower()
