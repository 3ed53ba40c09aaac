"""Long-form pages of the developer portal: Markdown files, one per language, in ``content/``.

Rendered with markdown-it-py (CommonMark plus tables) with raw HTML turned off, so a file
cannot inject markup or scripts: ``<script>`` in the source comes out as text, and links with
``javascript:`` are refused by the parser. Headings get ids (for links into the page), tables
get ``scope`` on their header cells and a scrolling wrapper, code blocks can be scrolled from
the keyboard.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from mesh.web.i18n import DEFAULT_LANGUAGE

CONTENT = Path(__file__).parent / "content"


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    rules = md.renderer.rules
    default_fence = rules["fence"]

    def th_open(tokens: list[Token], idx: int, options, env) -> str:
        tokens[idx].attrSet("scope", "col")
        return md.renderer.renderToken(tokens, idx, options, env)

    def table_open(tokens: list[Token], idx: int, options, env) -> str:
        return '<div class="table-wrap" tabindex="0">' + md.renderer.renderToken(
            tokens, idx, options, env)

    def table_close(tokens: list[Token], idx: int, options, env) -> str:
        return md.renderer.renderToken(tokens, idx, options, env) + "</div>"

    def fence(tokens: list[Token], idx: int, options, env) -> str:
        return default_fence(tokens, idx, options, env).replace("<pre>", '<pre tabindex="0">', 1)

    def heading_open(tokens: list[Token], idx: int, options, env) -> str:
        text = tokens[idx + 1].content if idx + 1 < len(tokens) else ""
        slug = "s-" + (re.sub(r"[^\w]+", "-", text.lower()).strip("-") or str(idx))
        seen = env.setdefault("ids", set())
        if slug in seen:
            slug = f"{slug}-{idx}"
        seen.add(slug)
        tokens[idx].attrSet("id", slug)
        return md.renderer.renderToken(tokens, idx, options, env)

    rules.update(th_open=th_open, table_open=table_open, table_close=table_close, fence=fence,
                 heading_open=heading_open)
    return md


MARKDOWN = _renderer()


def render_markdown(text: str) -> str:
    """HTML of a Markdown text; raw HTML in the text is escaped, never passed through."""
    return MARKDOWN.render(text)


@cache
def page_html(name: str, lang: str) -> Markup:
    """The rendered ``content/<name>.<lang>.md`` (Japanese when the language has none), marked
    safe for the template: it is the package's own text, with raw HTML escaped."""
    path = CONTENT / f"{name}.{lang}.md"
    if not path.exists():
        path = CONTENT / f"{name}.{DEFAULT_LANGUAGE}.md"
    return Markup(render_markdown(path.read_text(encoding="utf-8")))
