"""A safe reader and writer for the expressions symnet keeps in files and takes on the command line.

Expressions in a file (symbolic weights, traced activations) and activations given on the
command line (``--activation 0=x**2``) are *text*, and text from outside must never reach
``eval``, ``sympify`` or ``parse_expr``.  :func:`parse` is a small tokenizer and
recursive-descent parser that knows only

* numbers: ``2`` (an exact SymPy ``Integer``), ``0.5``, ``1e-05`` (a float64 ``Float``);
* names the caller allows (input or parameter symbols, ``x`` or ``t``) and the constants
  ``pi`` and ``E``;
* ``+ - * / **``, unary minus, parentheses;
* the functions in :data:`FUNCTIONS` (``exp``, ``log``, ``sin``, ``cos``, ``tanh``, ``sqrt``,
  ``erf``, ``Abs``, ``Max``, ``Min``, ``Heaviside``, ``sigmoid``, ``softplus``).

Anything else is an :class:`ExpressionError` that names the token.  Text that could make
the reader (or SymPy after it) work without end is refused past limits that no file symnet
writes comes near, each named in the message: :data:`MAX_LENGTH` characters per expression,
:data:`MAX_DEPTH` levels of nesting, :data:`MAX_DIGITS` characters per number,
exponents up to :data:`MAX_INTEGER_EXPONENT` in size (on any base: ``t**10**10`` is refused),
exact numbers up to :data:`MAX_BITS` bits and :data:`MAX_ARGUMENTS` arguments to
``Max``/``Min`` (counted after a nested ``Max`` is merged into its parent).  Reading is
linear in the length of the text (sums and products are built in one step, not term by
term).  Error messages show the text through :func:`safe_text`, so control characters in a
file never reach a terminal raw:

>>> import sympy
>>> x = sympy.Symbol("x", real=True)
>>> parse("0.5*x**2 - sigmoid(-x)", {"x": x})
0.5*x**2 - sigmoid(-x)
>>> parse("__import__('os')", {"x": x})
Traceback (most recent call last):
...
symnet.io._expr.ExpressionError: expression "__import__('os')": unknown function '__import__' at position 0; allowed functions: Abs, Heaviside, Max, Min, cos, erf, exp, log, sigmoid, sin, softplus, sqrt, tanh

:func:`to_text` writes an expression so that :func:`parse` reads back exactly the same
expression (floats with ``repr``, so every bit survives), and refuses what it cannot:

>>> to_text(sympy.Rational(1, 3) * x + 0.1, {"x": x})
'x/3 + 0.1'
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import sympy
from sympy.printing.str import StrPrinter

from ..errors import SymnetError
from ..functions import sigmoid, softplus

__all__ = ["ExpressionError", "FUNCTIONS", "CONSTANTS", "parse", "to_text", "safe_text", "MAX_LENGTH", "MAX_DEPTH",
           "MAX_DIGITS", "MAX_INTEGER_EXPONENT", "MAX_BITS", "MAX_ARGUMENTS",
           "MAX_PIECEWISE_ARGUMENTS"]


class ExpressionError(SymnetError, ValueError):
    """Text is not an expression symnet reads: an unknown name or function, a bad token, too deep."""


#: name -> (SymPy function, least number of arguments, most number of arguments or None)
FUNCTIONS: dict[str, tuple[Callable[..., sympy.Expr], int, int | None]] = {
    "exp": (sympy.exp, 1, 1),
    "log": (sympy.log, 1, 1),
    "sin": (sympy.sin, 1, 1),
    "cos": (sympy.cos, 1, 1),
    "tanh": (sympy.tanh, 1, 1),
    "sqrt": (sympy.sqrt, 1, 1),
    "erf": (sympy.erf, 1, 1),
    "Abs": (sympy.Abs, 1, 1),
    "Max": (sympy.Max, 1, None),
    "Min": (sympy.Min, 1, None),
    "Heaviside": (sympy.Heaviside, 1, 2),
    "sigmoid": (sigmoid, 1, 1),
    "softplus": (softplus, 1, 1),
}
CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}

# limits that keep hostile text from exhausting time or memory
#: characters in one expression
MAX_LENGTH = 100_000
#: levels of nesting: parentheses, function calls, powers, unary signs
MAX_DEPTH = 100
#: characters in one number
MAX_DIGITS = 400
#: the largest exponent (in absolute value) of a power with a numeric exponent, on any base
MAX_INTEGER_EXPONENT = 1000
#: bits of an exact integer or of a rational's numerator or denominator
MAX_BITS = 4096
#: arguments of one Max or Min, counted after SymPy merges the Max nested in a Max (Min in a Min)
MAX_ARGUMENTS = 32
#: Max/Min arguments in one whole expression: SymPy compares a Max's arguments pairwise, so
#: many small Max cost as much as one big one (symnet's own forms have 2 to 4)
MAX_PIECEWISE_ARGUMENTS = 128


def safe_text(text: object, limit: int | None = None, *, newlines: bool = False) -> str:
    """``str(text)`` with every character a terminal could act on shown escaped, for printing.

    Control and format characters (ANSI escapes, carriage return, bell, the right-to-left
    and other bidirectional overrides, zero-width characters), line and paragraph separators
    and unusual spaces -- every character that :meth:`str.isprintable` rejects -- are written
    as Python escapes (``\\x1b``, ``\\u202e``), as ``repr`` writes them; the rest, backslashes and
    quotes included, is kept.  ``newlines=True`` keeps ``"\\n"`` (for multi-line output);
    ``limit`` shortens the result to that many characters, ending in ``"..."``.  symnet's
    command line and its error messages show every text that comes from a file through this.

    >>> print(safe_text("tanh\\x1b[2J\\u202e"))
    tanh\\x1b[2J\\u202e
    >>> safe_text("a" * 50, limit=10)
    'aaaaaaa...'
    """
    text = str(text)
    cut = limit is not None and len(text) > limit
    if limit is not None:  # shorten first: escaping a huge text is wasted work
        text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() or (newlines and c == "\n") else repr(c)[1:-1] for c in text)
    if limit is not None and (cut or len(text) > limit):
        text = text[:max(limit - 3, 0)] + "..."
    return text

_TOKEN = re.compile(r"""\s*(?:
    (?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\*\*|[-+*/(),])
  | (?P<end>\Z)
)""", re.VERBOSE)


def _allowed(symbols: Mapping[str, Any]) -> str:
    return ", ".join(sorted(symbols)) or "none"


class _Parser:
    """Recursive descent over ``expr := term (+|- term)*``, ``term := unary (*|/ unary)*``,
    ``unary := (-|+) unary | power``, ``power := atom (** unary)?``,
    ``atom := number | name | name(args) | (expr)`` -- Python's precedences."""

    def __init__(self, text: str, symbols: Mapping[str, sympy.Expr]) -> None:
        if len(text) > MAX_LENGTH:
            raise ExpressionError(f"expression of {len(text):,} characters is longer than {MAX_LENGTH:,}")
        self.text = text
        self.symbols = symbols
        self.position = 0  # where the next token starts
        self.current = self._read()
        self.depth = 0
        self.piecewise_arguments = 0  # Max/Min arguments so far (MAX_PIECEWISE_ARGUMENTS)

    def error(self, message: str) -> ExpressionError:
        return ExpressionError(f'expression "{safe_text(self.text, 80)}": {message}')

    def _read(self) -> tuple[str, str, int]:
        """The token at ``self.position`` (tokens are read one at a time, so the first error is reported)."""
        match = _TOKEN.match(self.text, self.position)
        if match is None or (match.end() == self.position and match.lastgroup != "end"):
            rest = self.text[self.position:]
            where = self.position + len(rest) - len(rest.lstrip())
            char = self.text[where]
            raise self.error(f"unexpected character {char!r} at position {where}"
                             + ("; use ** for powers" if char == "^" else ""))
        kind = match.lastgroup or "end"
        self.position = match.end()
        return kind, match.group(kind), match.start(kind)

    # --- helpers --------------------------------------------------------------------------

    def peek(self) -> tuple[str, str, int]:
        return self.current

    def take(self) -> tuple[str, str, int]:
        token = self.current
        if token[0] != "end":
            self.current = self._read()
        return token

    def expect(self, op: str) -> None:
        kind, value, position = self.take()
        if (kind, value) != ("op", op):
            found = "the end" if kind == "end" else repr(value)
            raise self.error(f"expected {op!r} at position {position} but found {found}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested more than {MAX_DEPTH} levels deep")

    # --- grammar --------------------------------------------------------------------------

    def parse(self) -> sympy.Expr:
        result = self.expr()
        kind, value, position = self.peek()
        if kind != "end":
            raise self.error(f"unexpected {value!r} at position {position}")
        return result

    def expr(self) -> sympy.Expr:
        """A sum, built by one ``Add``: adding term by term is quadratic in the number of terms."""
        self.enter()
        result = self.term()
        if self.peek()[:2] in (("op", "+"), ("op", "-")):
            number, terms, position = self.gather(sympy.S.Zero, [], result, self.current[2], "+")
            while self.peek()[:2] in (("op", "+"), ("op", "-")):
                op, position = self.take()[1:]
                right = self.term()
                number = self.gather(number, terms, right if op == "+" else -right, position, "+")[0]
            result = self.checked(sympy.Add(number, *terms), position)
        self.depth -= 1
        return result

    def term(self) -> sympy.Expr:
        """A product or quotient, built by one ``Mul``."""
        result = self.unary()
        if self.peek()[:2] in (("op", "*"), ("op", "/")):
            number, factors, position = self.gather(sympy.S.One, [], result, self.current[2], "*")
            while self.peek()[:2] in (("op", "*"), ("op", "/")):
                op, position = self.take()[1:]
                right = self.unary()
                if op == "/":
                    if right == 0:
                        raise self.error(f"division by zero at position {position}")
                    if right.is_Number:  # numbers divide directly, as SymPy's a/b does
                        number = self.checked(number / right, position)
                        continue
                    right = self.checked(sympy.Pow(right, -1), position)
                number = self.gather(number, factors, right, position, "*")[0]
            result = self.checked(sympy.Mul(number, *factors), position)
        return result

    def gather(self, number: sympy.Expr, items: list[sympy.Expr], item: sympy.Expr, position: int,
               op: str) -> tuple[sympy.Expr, list[sympy.Expr], int]:
        """Fold a numeric ``item`` into ``number`` (in order, checked), or keep it in ``items``."""
        if item.is_Number:
            number = self.checked(number + item if op == "+" else number * item, position)
        else:
            items.append(item)
        return number, items, position

    def unary(self) -> sympy.Expr:
        if self.peek()[:2] in (("op", "-"), ("op", "+")):
            op = self.take()[1]
            self.enter()
            operand = self.unary()
            self.depth -= 1
            return -operand if op == "-" else operand
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.atom()
        if self.peek()[:2] != ("op", "**"):
            return base
        position = self.take()[2]
        self.enter()
        exponent = self.unary()
        self.depth -= 1
        if exponent.is_Number and abs(exponent) > MAX_INTEGER_EXPONENT:
            raise self.error(f"the power at position {position} has an exponent larger than {MAX_INTEGER_EXPONENT} "
                             f"(MAX_INTEGER_EXPONENT)")
        if base == 0 and exponent.is_negative:
            raise self.error(f"0 to a negative power at position {position}")
        if base.is_Rational and exponent.is_Integer:
            bits = max(abs(base.p).bit_length(), base.q.bit_length()) * abs(int(exponent))
            if bits > MAX_BITS:
                raise self.error(f"the power at position {position} is an exact number of more than {MAX_BITS} bits")
        return self.checked(base ** exponent, position)

    def checked(self, value: sympy.Expr, position: int) -> sympy.Expr:
        if value.is_Rational and max(abs(value.p).bit_length(), value.q.bit_length()) > MAX_BITS:
            raise self.error(f"the result at position {position} is an exact number of more than {MAX_BITS} bits")
        if value.is_Pow and value.exp.is_Number and abs(value.exp) > MAX_INTEGER_EXPONENT:  # (t**1000)**1000
            raise self.error(f"the result at position {position} is a power with an exponent larger than "
                             f"{MAX_INTEGER_EXPONENT} (MAX_INTEGER_EXPONENT)")
        return value

    def atom(self) -> sympy.Expr:
        kind, value, position = self.take()
        if kind == "number":
            return self.number(value, position)
        if kind == "name":
            if self.peek()[:2] == ("op", "("):
                return self.call(value, position)
            if value in self.symbols:
                return self.symbols[value]
            if value in CONSTANTS:
                return CONSTANTS[value]
            hint = f" (did you mean {value}(...)?)" if value in FUNCTIONS else ""
            raise self.error(f"unknown name {value!r} at position {position}{hint}; allowed names: "
                             f"{_allowed({**self.symbols, **CONSTANTS})}")
        if (kind, value) == ("op", "("):
            inner = self.expr()
            self.expect(")")
            return inner
        found = "the end" if kind == "end" else repr(value)
        raise self.error(f"expected a number, a name or '(' at position {position} but found {found}")

    def number(self, text: str, position: int) -> sympy.Expr:
        if len(text) > MAX_DIGITS:
            raise self.error(f"the number at position {position} has more than {MAX_DIGITS} characters")
        if "." in text or "e" in text or "E" in text:
            value = float(text)
            if value in (float("inf"), float("-inf")):
                raise self.error(f"the number {text} at position {position} does not fit a float64")
            if value == 0 and re.search("[1-9]", re.split("[eE]", text)[0]):
                raise self.error(f"the number {text} at position {position} is too small for a float64 "
                                 "(it would read as 0)")
            return sympy.Float(value)
        return self.checked(sympy.Integer(int(text)), position)

    def call(self, name: str, position: int) -> sympy.Expr:
        if name not in FUNCTIONS:
            raise self.error(f"unknown function {name!r} at position {position}; allowed functions: "
                             f"{_allowed(FUNCTIONS)}")
        function, least, most = FUNCTIONS[name]
        self.expect("(")
        args = [] if self.peek()[:2] == ("op", ")") else [self.expr()]
        while self.peek()[:2] == ("op", ","):
            self.take()
            if len(args) >= MAX_ARGUMENTS:
                raise self.error(f"{name} at position {position} has more than {MAX_ARGUMENTS} arguments "
                                 "(MAX_ARGUMENTS)")
            args.append(self.expr())
        self.expect(")")
        if len(args) < least or (most is not None and len(args) > most):
            wanted = f"{least}" if least == most else f"{least} or more" if most is None else f"{least} to {most}"
            raise self.error(f"{name} at position {position} takes {wanted} argument(s), not {len(args)}")
        if function in (sympy.Max, sympy.Min):
            # SymPy flattens Max(Max(a, b), c) into Max(a, b, c) and compares its arguments pairwise:
            # count the flattened arguments, or nesting gets around the limit
            flat = sum(len(arg.args) if isinstance(arg, function) else 1 for arg in args)
            if flat > MAX_ARGUMENTS:
                raise self.error(f"{name} at position {position} has {flat} arguments once the {name} nested in "
                                 f"it are merged, more than {MAX_ARGUMENTS} (MAX_ARGUMENTS)")
            self.piecewise_arguments += len(args)
            if self.piecewise_arguments > MAX_PIECEWISE_ARGUMENTS:
                raise self.error(f"{name} at position {position}: the expression has more than "
                                 f"{MAX_PIECEWISE_ARGUMENTS} Max/Min arguments in all (MAX_PIECEWISE_ARGUMENTS)")
        return function(*args)


def parse(text: str, symbols: Mapping[str, sympy.Expr]) -> sympy.Expr:
    """Read ``text`` as a SymPy expression over ``symbols`` (name -> symbol); never evaluates code.

    Raises :class:`ExpressionError` naming the offending token and its position.

    >>> t = sympy.Symbol("t", real=True)
    >>> parse("Max(0, t) + 0.01*Min(0, t)", {"t": t})
    Max(0, t) + 0.01*Min(0, t)
    >>> parse("2**-1 * t", {"t": t})
    t/2
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__}")
    return _Parser(text, symbols).parse()


class _Writer(StrPrinter):
    """``sstr`` with floats written by ``repr`` (exact for float64) and names checked."""

    def __init__(self, symbols: Mapping[str, sympy.Expr]) -> None:
        super().__init__({"full_prec": True})
        self._symbols = symbols

    def _print_Float(self, expr: sympy.Float) -> str:
        if getattr(expr, "_prec", 53) != 53:
            raise ExpressionError(
                f"the number {expr} has {expr._prec}-bit precision; symnet writes floats as float64 "
                "(53 bits): round it with sympy.Float(float(x)) or give it as an exact Rational"
            )
        value = float(expr)
        if value != value or value in (float("inf"), float("-inf")):
            raise ExpressionError(f"{expr} is not a finite number")
        return repr(value)

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        if self._symbols.get(expr.name) != expr:
            raise ExpressionError(f"symbol {expr.name!r} cannot be written: it is not one of {_allowed(self._symbols)}")
        return expr.name


def to_text(expr: sympy.Expr, symbols: Mapping[str, sympy.Expr]) -> str:
    """``expr`` as text that :func:`parse` reads back to exactly ``expr``; :class:`ExpressionError` if none.

    ``symbols`` maps each allowed name to its symbol (the same mapping :func:`parse` gets).
    """
    text = _Writer(symbols).doprint(expr)
    try:
        back = parse(text, symbols)
    except ExpressionError as exc:
        raise ExpressionError(f"{expr} cannot be written as an expression symnet reads back: {exc}") from None
    if back != expr:
        raise ExpressionError(f"{expr} cannot be written exactly: it reads back as {back}")
    return text
