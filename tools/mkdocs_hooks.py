"""MkDocs hooks for the documentation site (``hooks:`` in mkdocs.yml).

What the pages and docstrings are written for (a repository browser, reST-minded readers) and
what the site needs differ in three ways:

- The docs link to ``../README.md#section`` (and the root's CHANGELOG.md and SECURITY.md) so that
  they work where they are read as files. On the site those files live on the pages that include
  them (the README's sections on the home page); the links go there. The build's anchor check
  still fails on a section the home page does not include.
- The docstrings use reST roles (:class:`Name`, :func:`~module.name`), which Markdown renders as
  the role's name followed by code. The role is dropped; with ``~`` only the last component is
  shown, as Sphinx shows it. A fully qualified name becomes a cross-reference when the reference
  documents that object, and stays plain code when it does not (an optional reference: no
  warning). A paragraph that ends with reST's ``::`` before a literal block ends with one colon,
  and a ``::`` alone goes, as in reST.
- A class's entries in the reference: see :class:`HideUndocumentedSpecials`, a griffe extension
  (``extensions:`` of the mkdocstrings options in mkdocs.yml).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# The repository's files that a page of the site includes whole or in part: where their links go.
_INCLUDED = {"README.md": "index.md", "CHANGELOG.md": "changelog.md", "SECURITY.md": "security.md"}
_ROOT_LINK = re.compile(r"\]\(\.\./(README|CHANGELOG|SECURITY)\.md(#[^)\s]*)?\)")
_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):<code>(~?)([^<]*)</code>")
_LITERAL_MARK = re.compile(r"<p>::</p>\n?|(?<=[^:]):(?=:</p>)")
_QUALIFIED = re.compile(r"(?:policy|resource_server)(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _ROOT_LINK.sub(lambda m: f"]({_INCLUDED[m[1] + '.md']}{m[2] or ''})", markdown)


def _code(match: re.Match[str]) -> str:
    short, target = match[1], match[2].removesuffix("()")
    shown = match[2].rsplit(".", 1)[-1] if short else match[2]
    if not _QUALIFIED.fullmatch(target):
        return f"<code>{shown}</code>"
    return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'


def on_page_content(html: str, **kwargs: Any) -> str:
    return _LITERAL_MARK.sub("", _ROLE.sub(_code, html))


class HideUndocumentedSpecials(griffe.Extension):
    """Keeps a class's entries in the reference to what its documentation covers. A special member (``__repr__``, ``__slots__``,
    ``__eq__``, ...) or an attribute without a docstring of its own is an implementation detail
    or a field the class's signature already shows, not an entry of the reference; one with a
    docstring stays. Module-level names are left alone: every name in ``__all__`` has an entry.
    """

    def on_class(self, *, cls: griffe.Class, **kwargs: Any) -> None:
        for name, member in list(cls.members.items()):
            undocumented = member.docstring is None and name != "__init__"
            if undocumented and (member.is_special or member.is_attribute):
                cls.del_member(name)
