"""A small, safe arithmetic evaluator for config values (never `eval`).

Allowed: numbers, strings, booleans, variable names, + - * / // % **, unary
+ - not, comparisons, and/or, `a if c else b`, lists, and calls to `int`,
`float`, `round`, `min`, `max`, `abs`, `ceil`, `floor` and
`make_divisible(v, divisor=8)` (the MobileNet channel rounding).
"""

import ast
import math
import operator

MAX_LENGTH = 500
MAX_POWER = 64


def make_divisible(value, divisor=8, min_value=None):
    """Rounds channels to a multiple of `divisor`, never below 90% of `value`."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


FUNCTIONS = {"int": int, "float": float, "round": round, "min": min, "max": max, "abs": abs,
             "ceil": math.ceil, "floor": math.floor, "make_divisible": make_divisible}
BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
          ast.Pow: operator.pow}
COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
           ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}


class ExpressionError(ValueError):
    pass


def evaluate(text, names):
    """Evaluates expression `text` with variables `names`."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"invalid expression {text!r}: {err.msg}") from None
    return _eval(tree.body, names, text)


def _eval(node, names, text):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)) \
            or isinstance(node, ast.Constant) and node.value is None:
        return node.value
    if isinstance(node, ast.Name):
        if node.id in ("true", "True"):
            return True
        if node.id in ("false", "False"):
            return False
        if node.id not in names:
            raise ExpressionError(f"unknown variable {node.id!r} in {text!r}; known: "
                                  f"{sorted(names)}")
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _eval(node.left, names, text), _eval(node.right, names, text)
        if isinstance(node.op, ast.Pow) and (not isinstance(right, (int, float)) or abs(right) > MAX_POWER):
            raise ExpressionError(f"exponent too large in {text!r}")
        if isinstance(node.op, ast.Mult) and (isinstance(left, str) or isinstance(right, str)):
            raise ExpressionError(f"string repetition is not allowed in {text!r}")
        try:
            return BINARY[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError, OverflowError) as err:
            raise ExpressionError(f"{err} in {text!r}") from None
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, names, text)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        if isinstance(node.op, ast.Not):
            return not value
    if isinstance(node, ast.BoolOp):
        values = [_eval(v, names, text) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and all(type(op) in COMPARE for op in node.ops):
        left = _eval(node.left, names, text)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, names, text)
            try:
                holds = COMPARE[type(op)](left, right)
            except TypeError as err:  # `strides > 1` with strides a list
                raise ExpressionError(f"{err} in {text!r}") from None
            if not holds:
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval(node.body if _eval(node.test, names, text) else node.orelse, names, text)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, names, text) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in FUNCTIONS and not node.keywords:
        args = [_eval(a, names, text) for a in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except (TypeError, ValueError, OverflowError) as err:
            raise ExpressionError(f"{node.func.id}(): {err} in {text!r}") from None
    if isinstance(node, ast.Call):
        called = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
        raise ExpressionError(f"call of {called!r} is not allowed in an expression (allowed: "
                              f"{', '.join(sorted(FUNCTIONS))}, positional arguments only) in {text!r}")
    if isinstance(node, ast.Attribute):
        raise ExpressionError(f"attribute access (.{node.attr}) is not allowed in an expression in {text!r}")
    raise ExpressionError(f"{type(node).__name__} is not allowed in an expression in {text!r}")
