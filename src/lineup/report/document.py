"""The report as format-neutral data (sections of text, tables and figures) and its Markdown rendering.

The sections are built once and rendered twice: to HTML by the Jinja2 template (autoescaped) and to Markdown
here, so both formats say the same thing. Every string in a block is plain text, never markup: a model named
``<script>`` stays a name in both formats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

_NUMERIC = re.compile(r"^[<>+\-−]?\d")


@dataclass(frozen=True)
class Span:
    """A run of text; ``style`` is ``""`` (plain), ``"b"`` (strong) or ``"code"``."""

    text: str
    style: str = ""


def strong(text: str) -> Span:
    return Span(text, "b")


def code(text: str) -> Span:
    return Span(text, "code")


@dataclass
class Text:
    """A paragraph; ``muted`` ones are captions and notes."""

    spans: list[Span]
    muted: bool = False
    kind: ClassVar[str] = "text"


def para(*parts: str | Span, muted: bool = False) -> Text:
    """A paragraph from plain strings and styled spans."""
    return Text([p if isinstance(p, Span) else Span(p) for p in parts], muted=muted)


@dataclass
class Bullets:
    """A list of paragraphs."""

    items: list[Text]
    kind: ClassVar[str] = "bullets"


@dataclass
class Table:
    """A table of strings; ``name`` is its file stem in ``tables/`` (CSV and Markdown) and its HTML id."""

    name: str
    header: list[str]
    rows: list[list[str]]
    row_classes: list[str] = field(default_factory=list)  # one CSS class per row ("" for none), HTML only
    kind: ClassVar[str] = "table"

    @property
    def numeric(self) -> list[bool]:
        """Per column: whether every non-empty cell starts with a number (such columns align right)."""
        return [all(_NUMERIC.match(row[j]) for row in self.rows if j < len(row) and row[j])
                for j in range(len(self.header))]


@dataclass
class Figure:
    """A figure saved as ``figures/<name>.png``; ``uri`` is its data URI for the self-contained HTML."""

    name: str
    alt: str
    uri: str
    caption: str = ""
    narrow: bool = False  # shown at most 520 px wide in HTML (square figures such as confusion matrices)
    kind: ClassVar[str] = "figure"


Block = Text | Bullets | Table | Figure


@dataclass
class Section:
    """A heading (level 2 or 3) with its blocks."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


# -- Markdown ------------------------------------------------------------------------------------------------------

# Enough to keep text literal: emphasis (* _), code (`), links and images ([), table cells (|), escapes (\).
_MD_SPECIAL = re.compile(r"([\\`*_\[|])")


def md_escape(text: str) -> str:
    """Escape text for Markdown: its punctuation is literal and HTML in it is shown, never run.

    >>> print(md_escape("<script>alert(1)</script> *x* [a](b)"))
    &lt;script&gt;alert(1)&lt;/script&gt; \\*x\\* \\[a](b)
    """
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _md_spans(t: Text) -> str:
    out = []
    for s in t.spans:
        if s.style == "code":
            out.append("`" + s.text.replace("`", "'") + "`")
        elif s.style == "b":
            out.append(f"**{md_escape(s.text)}**")
        else:
            out.append(md_escape(s.text))
    line = "".join(out)
    return f"*{line}*" if t.muted else line


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table with every cell escaped."""
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_markdown(title: str, sections: list[Section]) -> str:
    """The whole report as Markdown; figures are linked as ``figures/<name>.png`` beside it."""
    lines = [f"# {md_escape(title)}", ""]
    for s in sections:
        lines += ["#" * s.level + " " + md_escape(s.title), ""]
        for b in s.blocks:
            if isinstance(b, Text):
                lines += [_md_spans(b), ""]
            elif isinstance(b, Bullets):
                lines += [f"- {_md_spans(item)}" for item in b.items] + [""]
            elif isinstance(b, Table):
                lines += [markdown_table(b.header, b.rows)]
            else:
                lines += [f"![{md_escape(b.alt)}](figures/{b.name}.png)", ""]
                if b.caption:
                    lines += [f"*{md_escape(b.caption)}*", ""]
    return "\n".join(lines).rstrip() + "\n"
