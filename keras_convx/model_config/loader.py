"""Safe YAML loading that keeps every value's file position, with size guards."""

import os
import re

import yaml

MAX_BYTES = 2_000_000
MAX_NODES = 200_000  # after alias expansion: a billion-laughs file stops here
MAX_DEPTH = 64
SAFE_TAGS = {
    "tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "map", "seq")
}


class ConfigError(ValueError):
    """A config problem, located: `file:line:col: key.path: message`."""

    def __init__(self, message, source="<config>", line=None, col=None, path=""):
        self.source, self.line, self.col, self.path = source, line, col, path
        self.reason = message
        where = source if line is None else f"{source}:{line}:{col}"
        super().__init__(f"{where}: {path + ': ' if path else ''}{message}")


class Located:
    """Positions of the loaded values, keyed by key path tuples."""

    def __init__(self, source):
        self.source = source
        self.marks = {}

    def error(self, path, message, entry=None, name=None):
        """A ConfigError at the nearest known position of `path`.

        `entry` (a prefix of `path`) and `name` label the layer entry: `layers[3] (conv2b).args`.
        """
        key = tuple(path)
        while key and key not in self.marks:
            key = key[:-1]
        line, col = self.marks.get(key, (None, None))
        text = format_path(path)
        if entry is not None and name is not None:
            head = format_path(entry)
            rest = format_path(tuple(path)[len(entry):])
            text = f"{head} ({name})" + ("" if not rest else rest if rest.startswith("[") else "." + rest)
        return ConfigError(message, self.source, line, col, text)


def format_path(path):
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


ZOO_DIR = os.environ.get("KERAS_CONVX_CONFIGS",
                         os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
                             os.path.abspath(__file__)))), "configs"))
_NAME = re.compile(r"^[^:{}\[\]\n]+$")  # one line without YAML syntax: a name or a path


def zoo_names():
    """The configs of the zoo (`configs/`, or `$KERAS_CONVX_CONFIGS`), by name."""
    if not os.path.isdir(ZOO_DIR):
        return []
    return sorted(f[:-5] for f in os.listdir(ZOO_DIR) if f.endswith(".yaml"))


def resolve(source, also=(), strict=True):
    """What a config argument names: the same rule for the CLI and `build_model`.

    Returns a path (a .yaml/.yml file, or a zoo config for a bare name), or `source`
    itself when it is YAML text or a dict. A path with another suffix (other than those
    in `also`, e.g. ".keras" where the caller loads those) or an unknown bare name is a
    ConfigError naming it, with the zoo's names and the closest one. With `strict=False`
    an unknown bare name is returned as YAML text (a one-word YAML document), whose error
    then says it is neither (`zoo_hint`).
    """
    if isinstance(source, dict):
        return source
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not _NAME.match(source.strip()):
        return source  # YAML text
    source = source.strip()
    suffix = os.path.splitext(source)[1].lower()
    if suffix in (".yaml", ".yml") or suffix in also:
        return source
    if suffix and not source.endswith("."):
        accepted = ", ".join((".yaml", ".yml") + tuple(also))
        raise ConfigError(f"not a config file (accepted: {accepted}, or a zoo name)", source)
    if source in zoo_names():
        return os.path.join(ZOO_DIR, f"{source}.yaml")
    if not strict:
        return source
    raise ConfigError(f"no such config or zoo model {zoo_hint(source)}", source)


def zoo_hint(word):
    """`(zoo: a, b, ...; did you mean x?)` for a word that names no zoo config."""
    import difflib

    names = zoo_names()
    close = difflib.get_close_matches(str(word), names, n=1)
    return (f"(zoo: {', '.join(names) or 'empty'}"
            + (f"; did you mean {close[0]}?" if close else "") + ")")


def load(source):
    """Loads a config from a path, a zoo name, a YAML string or a dict; returns
    (data, Located)."""
    source = resolve(source, strict=False)
    if isinstance(source, dict):
        return source, Located("<dict>")
    if isinstance(source, str) and "\n" not in source and \
            source.endswith((".yaml", ".yml")):
        name = os.fspath(source)
        if not os.path.exists(name):
            raise ConfigError("no such file", name)
        if os.path.isdir(name):
            raise ConfigError("is a directory, not a config file", name)
        if os.path.getsize(name) > MAX_BYTES:
            raise ConfigError(f"file is larger than {MAX_BYTES} bytes", name)
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"can't read: {err}", name) from None
    else:
        name, text = "<string>", str(source)
        if len(text) > MAX_BYTES:
            raise ConfigError(f"config is larger than {MAX_BYTES} bytes", name)
    located = Located(name)
    _check_depth(text, name)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise _yaml_error(err, text, name) from None
    if node is None:
        raise ConfigError("the config is empty", name)
    counter = [0]
    return _convert(node, (), located, counter, 0), located


_OPEN = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken, yaml.BlockSequenceStartToken,
         yaml.BlockMappingStartToken)
_CLOSE = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)


def _check_depth(text, source):
    """Refuses deep nesting from the token stream (PyYAML's composer recurses per level)."""
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, _OPEN):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = token.start_mark
                    raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", source,
                                      mark.line + 1, mark.column + 1)
            elif isinstance(token, _CLOSE):
                depth -= 1
    except yaml.YAMLError as err:
        raise _yaml_error(err, text, source) from None


def _yaml_error(err, text, source):
    """A located ConfigError from any PyYAML error (marks, or a reader's character position)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is not None:
        line, col = mark.line + 1, mark.column + 1
    else:
        pos = getattr(err, "position", 0) or 0
        line, col = text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    for words, plain in _YAML_PLAIN:
        if words in problem:
            return ConfigError(f"not valid YAML: {plain} (PyYAML: {problem})", source, line, col)
    return ConfigError(f"not valid YAML: {problem}", source, line, col)


# PyYAML's words for the usual typing slips, and what they mean
_YAML_PLAIN = (
    ("expected <block end>", "this line's indentation does not match the lines above (keys of "
                             "one mapping start in the same column; indent with spaces)"),
    ("found character '\\t'", "a tab: indent with spaces"),
    ("mapping values are not allowed here", "a ':' where a value was expected (quote a value "
                                            "that contains ': ', or check the indentation)"),
    ("could not find expected ':'", "a key without ':' (or a line indented under a plain "
                                    "value)"),
    ("expected ',' or ']'", "an unclosed [ ... ] list"),
    ("expected ',' or '}'", "an unclosed { ... } mapping"),
)


_constructor = yaml.SafeLoader("")


def _convert(node, path, located, counter, depth):
    counter[0] += 1
    mark = (node.start_mark.line + 1, node.start_mark.column + 1)
    located.marks.setdefault(path, mark)
    if counter[0] > MAX_NODES:
        raise ConfigError(f"more than {MAX_NODES} values after alias expansion (alias bomb?)",
                          located.source, *mark, format_path(path))
    if depth > MAX_DEPTH:
        raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", located.source, *mark,
                          format_path(path))
    if node.tag not in SAFE_TAGS:
        raise ConfigError(f"tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed "
                          f"(plain YAML values only)", located.source, *mark, format_path(path))
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in SAFE_TAGS:
                raise ConfigError("mapping keys must be plain scalars", located.source,
                                  key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                  format_path(path))
            if key_node.value == "<<":
                raise ConfigError("merge keys (<<) are not supported", located.source,
                                  key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                  format_path(path))
            key = _constructor.construct_object(key_node)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", located.source,
                                  key_node.start_mark.line + 1, key_node.start_mark.column + 1,
                                  format_path(path))
            located.marks[path + (key,)] = (key_node.start_mark.line + 1,
                                            key_node.start_mark.column + 1)
            out[key] = _convert(value_node, path + (key,), located, counter, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, path + (i,), located, counter, depth + 1)
                for i, v in enumerate(node.value)]
    return _constructor.construct_object(node)
