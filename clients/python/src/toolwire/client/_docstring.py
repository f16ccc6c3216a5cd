"""Reads a Google-style docstring: the summary paragraph and the `Args:` descriptions."""

from __future__ import annotations

import inspect
import re

_SECTION_HEADER = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")
_ARGUMENTS_HEADERS = frozenset({"Args", "Arguments", "Parameters", "Params"})
_ARGUMENT_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(docstring: str | None) -> tuple[str, dict[str, str]]:
    """The first paragraph of a docstring and the descriptions in its Google-style `Args:` section."""
    lines = inspect.cleandoc(docstring or "").splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION_HEADER.match(line):
            break
        summary.append(line.strip())
    descriptions: dict[str, str] = {}
    section_indent: int | None = None
    argument_indent: int | None = None
    current: str | None = None
    for line in lines:
        header = _SECTION_HEADER.match(line)
        if header and (section_indent is None or len(header.group(1)) <= section_indent):
            is_arguments = header.group(2) in _ARGUMENTS_HEADERS
            section_indent = len(header.group(1)) if is_arguments else None
            argument_indent, current = None, None
            continue
        if section_indent is None or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= section_indent:
            section_indent = None
            continue
        argument_indent = indent if argument_indent is None else argument_indent
        match = _ARGUMENT_LINE.match(line.strip())
        if indent == argument_indent and match:
            current = match.group(1)
            descriptions[current] = match.group(2).strip()
        elif current is not None and indent > argument_indent:
            descriptions[current] = f"{descriptions[current]} {line.strip()}".strip()
    return " ".join(summary), descriptions
