"""A tenant's e-mail templates: Jinja2 in a sandbox, on a short leash.

Tenants write their own templates, so a template is untrusted code. Three fences:

1. Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment` (no ``_``-attributes, no unsafe
   methods), with its globals removed (no ``range``, ``lipsum``, ``namespace``…).
2. Before anything is compiled, the parsed template is walked and only substitution is let
   through: variables, attribute and item access, an allow-list of filters and tests,
   ``if``/``else``, ``for`` over given lists, and ``~`` concatenation. No calls, no
   arithmetic (``{{ 'x' * 10**9 }}`` would exhaust memory, and Jinja's optimiser would fold
   ``10**10**10`` while compiling), no ``set``, macros, imports, includes, ``|safe``, or
   ``autoescape`` switches. Top-level names must be the documented variables.
3. Rendering stops at :data:`MAX_OUTPUT` characters.

Subjects and plain-text bodies render without escaping; HTML bodies autoescape. A rendered
subject is folded onto one line, so a value carrying CR/LF cannot add a mail header.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formataddr
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "MAX_OUTPUT",
    "MAX_SOURCE",
    "TEMPLATE_NAME",
    "VARIABLES",
    "RenderedEmail",
    "check_template",
    "render_template",
    "sample_context",
]

#: longest template source, in characters
MAX_SOURCE = 16 * 1024
#: longest rendered output, in characters
MAX_OUTPUT = 256 * 1024
#: names of templates: ``welcome``, ``invite``, ``password_reset``…
TEMPLATE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")

#: the variables a template may use, as the app passes them to :meth:`Branding.render_email`
VARIABLES = {
    "product_name": "the brand's product name",
    "sender_name": "the brand's e-mail sender name",
    "tenant_name": "the tenant's display name",
    "recipient": "who the e-mail is for: .name, .email",
    "action_url": "the link the e-mail asks to follow",
    "data": "anything else the app passes (a mapping)",
}

_NODES: frozenset[type[nodes.Node]] = frozenset(
    {
        nodes.Template,
        nodes.Output,
        nodes.TemplateData,
        nodes.Const,
        nodes.Name,
        nodes.Getattr,
        nodes.Getitem,
        nodes.Filter,
        nodes.Test,
        nodes.If,
        nodes.CondExpr,
        nodes.And,
        nodes.Or,
        nodes.Not,
        nodes.Compare,
        nodes.Operand,
        nodes.Concat,
        nodes.For,
        nodes.Tuple,
        nodes.List,
        nodes.Keyword,
        nodes.Neg,
        nodes.Pos,
    }
)
_FILTERS = frozenset(
    {
        "capitalize",
        "count",
        "d",
        "default",
        "e",
        "escape",
        "first",
        "join",
        "last",
        "length",
        "lower",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "wordcount",
    }
)
_TESTS = frozenset(
    {
        "defined",
        "undefined",
        "none",
        "string",
        "number",
        "sequence",
        "mapping",
        "true",
        "false",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "in",
        "odd",
        "even",
    }
)


def _environment(html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(autoescape=html, keep_trailing_newline=True, auto_reload=False)
    env.globals.clear()
    return env


_ENVIRONMENTS = {False: _environment(False), True: _environment(True)}


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One e-mail, ready for the app's mailer."""

    sender_name: str
    subject: str
    text: str
    html: str | None

    def from_header(self, address: str) -> str:
        """The ``From:`` value for ``address`` under the brand's sender name, quoted (and
        RFC 2047-encoded when not ASCII) as mail headers need.

        >>> RenderedEmail("Acme, Inc.", "s", "t", None).from_header("no-reply@acme.example")
        '"Acme, Inc." <no-reply@acme.example>'
        """
        return formataddr((self.sender_name, address))

    def to_dict(self) -> dict[str, str | None]:
        return {"sender_name": self.sender_name, "subject": self.subject, "text": self.text, "html": self.html}


def sample_context(product_name: str = "Acme Tracker", sender_name: str = "Acme") -> dict[str, Any]:
    """What templates are validated against: every documented variable, with sample values."""
    return {
        "product_name": product_name,
        "sender_name": sender_name,
        "tenant_name": "Acme Corporation",
        "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "action_url": "https://acme.example.com/welcome?token=sample",
        # whatever the app will pass: every attribute, item and loop of it is empty here
        "data": ChainableUndefined(name="data"),
    }


def check_template(source: str, *, html: bool, part: str) -> None:
    """Refuse a template that does not parse, steps outside the fences, or fails to render
    with :func:`sample_context`; :class:`ValueError` names ``part`` and the reason."""
    if not isinstance(source, str):
        raise ValueError(f"{part} must be text")
    if len(source) > MAX_SOURCE:
        raise ValueError(f"{part} is {len(source)} characters; the limit is {MAX_SOURCE}")
    env = _ENVIRONMENTS[html]
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as err:
        raise ValueError(f"{part} line {err.lineno}: {err.message}") from None
    _check_tree(tree, part)
    render_template(source, sample_context(), html=html, part=part)


def _check_tree(tree: nodes.Template, part: str) -> None:
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "store"}
    allowed_names = set(VARIABLES) | stored | {"loop"}
    for node in tree.find_all(nodes.Node):
        kind = type(node)
        line = f"{part} line {node.lineno}" if node.lineno else part
        if kind not in _NODES:
            raise ValueError(f"{line}: {_describe(node)} is not allowed in e-mail templates")
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in allowed_names:
            known = ", ".join(VARIABLES)
            raise ValueError(f"{line}: unknown variable {node.name!r} (templates may use {known})")
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise ValueError(f"{line}: attribute {node.attr!r} is not allowed (names starting with _ are private)")
        if (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and str(node.arg.value).startswith("_")
        ):
            raise ValueError(f"{line}: item {node.arg.value!r} is not allowed (names starting with _ are private)")
        if isinstance(node, nodes.Filter | nodes.Test):
            names = _FILTERS if isinstance(node, nodes.Filter) else _TESTS
            what = "filter" if isinstance(node, nodes.Filter) else "test"
            if node.name not in names or node.dyn_args is not None or node.dyn_kwargs is not None:
                raise ValueError(f"{line}: {what} {node.name!r} is not allowed (allowed: {', '.join(sorted(names))})")
        if isinstance(node, nodes.For) and node.recursive:
            raise ValueError(f"{line}: recursive loops are not allowed")


def _describe(node: nodes.Node) -> str:
    if isinstance(node, nodes.Call):
        return "calling a function or method"
    if isinstance(node, nodes.BinExpr):
        return f"arithmetic ({node.operator})"
    names: dict[type[nodes.Node], str] = {
        nodes.Assign: "{% set %}",
        nodes.AssignBlock: "{% set %}",
        nodes.Macro: "{% macro %}",
        nodes.Import: "{% import %}",
        nodes.FromImport: "{% from … import %}",
        nodes.Include: "{% include %}",
        nodes.Extends: "{% extends %}",
        nodes.Block: "{% block %}",
        nodes.Scope: "{% autoescape %}",
        nodes.ScopedEvalContextModifier: "{% autoescape %}",
        nodes.FilterBlock: "{% filter %}",
        nodes.CallBlock: "{% call %}",
        nodes.With: "{% with %}",
    }
    return names.get(type(node), type(node).__name__)


def render_template(source: str, context: Mapping[str, Any], *, html: bool, part: str) -> str:
    """Render one template in the sandbox; :class:`ValueError` when it fails or grows past
    :data:`MAX_OUTPUT`."""
    env = _ENVIRONMENTS[html]
    try:
        template = env.from_string(source)
        pieces: list[str] = []
        total = 0
        for piece in template.generate(dict(context)):
            total += len(piece)
            if total > MAX_OUTPUT:
                raise ValueError(f"{part} renders to more than {MAX_OUTPUT} characters")
            pieces.append(piece)
    except SecurityError as err:
        raise ValueError(f"{part}: refused by the sandbox: {err}") from None
    except TemplateError as err:
        raise ValueError(f"{part}: {err.message or type(err).__name__}") from None
    except (TypeError, ValueError, AttributeError, LookupError, ArithmeticError) as err:
        if isinstance(err, ValueError) and str(err).startswith(part):
            raise
        raise ValueError(f"{part}: {type(err).__name__}: {err}") from None
    return "".join(pieces)


_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def one_line(text: str) -> str:
    """``text`` with every control character and line break folded into one space."""
    return " ".join(_LINE_BREAKS.sub(" ", text).split())
