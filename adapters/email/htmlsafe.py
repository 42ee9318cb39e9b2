"""HTML of incoming mail: sanitized for display (nh3) and turned into readable text.

Sanitizing keeps formatting and inline ``cid:`` images; it drops scripts, event handlers, ``javascript:`` URLs,
frames, CSS beyond a small list of harmless properties, tracking pixels and, unless allowed, remote images.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "span", "div"}
_GENERIC_ATTRIBUTES = {"style", "dir", "lang", "title", "align"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": _GENERIC_ATTRIBUTES,
    "font": {"color", "face", "size"},
    "img": {"src", "alt", "width", "height"},
    "a": {"href", "hreflang"},
    "blockquote": {"cite", "type"},
    "table": {"summary", "align", "border", "cellpadding", "cellspacing", "width", "bgcolor"},
    "td": {"colspan", "rowspan", "align", "valign", "width", "bgcolor", "headers"},
    "th": {"colspan", "rowspan", "align", "valign", "width", "bgcolor", "scope", "headers"},
}
_CLEAN_CONTENT = {"script", "style", "head", "title", "xml", "iframe", "object", "embed", "noscript", "template",
                  "svg", "math", "applet", "frameset", "frame"}
_STYLE_PROPERTIES = {
    "color", "background-color", "font-weight", "font-style", "font-size", "font-family", "text-decoration",
    "text-align", "vertical-align", "line-height", "white-space", "list-style-type", "border", "border-collapse",
    "border-top", "border-bottom", "border-left", "border-right", "border-color", "border-width", "border-style",
    "margin", "margin-top", "margin-bottom", "margin-left", "margin-right", "padding", "padding-top",
    "padding-bottom", "padding-left", "padding-right", "width", "max-width", "text-indent",
}
_URL_SCHEMES = {"http", "https", "mailto", "tel", "cid"}
_QUOTE_CLASSES = {"gmail_quote", "gmail_attr", "gmail_quote_container", "moz-cite-prefix", "OutlookMessageHeader"}

_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE | re.DOTALL)
_DIM = re.compile(r"""\b(width|height)\s*=\s*["']?\s*(\d+)""", re.IGNORECASE)
_STYLE_DIM = re.compile(r"\b(width|height)\s*:\s*([0-9.]+)\s*px", re.IGNORECASE)
_HIDDEN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|opacity\s*:\s*0(?![.\d])", re.IGNORECASE)


def is_tracking_pixel(tag: str) -> bool:
    """A tiny or hidden image: its only purpose is to report that the mail was opened."""
    dims = [int(v) for _, v in _DIM.findall(tag)] + [float(v) for _, v in _STYLE_DIM.findall(tag)]
    if any(d <= 2 for d in dims):
        return True
    return bool(_HIDDEN.search(tag))


def remove_tracking_pixels(html: str) -> tuple[str, int]:
    removed = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal removed
        if is_tracking_pixel(m.group(0)):
            removed += 1
            return ""
        return m.group(0)

    return _IMG_TAG.sub(repl, html), removed


def sanitize_html(html: str, *, allow_remote_images: bool = False, cid_map: dict[str, str] | None = None) -> str:
    """Safe-to-display HTML. ``cid_map`` rewrites ``cid:`` sources (e.g. to attachment URLs) when given."""
    html, _ = remove_tracking_pixels(html)

    def attribute_filter(element: str, attribute: str, value: str) -> str | None:
        if element == "img" and attribute == "src":
            scheme = value.split(":", 1)[0].strip().lower() if ":" in value else ""
            if scheme == "cid":
                return cid_map.get(value[4:].strip("<>"), value) if cid_map else value
            if scheme in ("http", "https") and allow_remote_images:
                return value
            return None
        return value

    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=attribute_filter,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        allowed_classes={"div": _QUOTE_CLASSES, "blockquote": {"gmail_quote"}, "span": {"gmail_quote"}},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


# -- HTML → text ---------------------------------------------------------------------------------------------------
_BLOCK = {"p", "div", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "section", "article",
          "header", "footer", "address", "dl", "dd", "dt", "center", "form", "fieldset", "hr", "tbody", "thead",
          "blockquote", "li", "body", "html", "main", "nav", "aside", "figure", "figcaption"}
_SKIP = {"script", "style", "head", "title", "xml", "template", "noscript", "iframe", "object", "svg", "math"}


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []  # (quote depth, text)
        self.current: list[str] = []
        self.depth = 0
        self.line_depth = 0
        self.skip = 0
        self.pre = 0
        self.href: str | None = None
        self.link_text: list[str] = []

    def newline(self) -> None:
        text = "".join(self.current)
        text = text if self.pre else re.sub(r"[ \t\r\n\f\u00a0\u200b]+", " ", text).strip()
        self.lines.append((self.line_depth, text))
        self.current = []
        self.line_depth = self.depth

    def soft_newline(self) -> None:
        if "".join(self.current).strip():
            self.newline()
        else:
            self.current = []
            self.line_depth = self.depth

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        if tag == "br":
            self.newline()
        elif tag in _BLOCK:
            self.soft_newline()
            if tag == "blockquote":
                self.depth += 1
                self.line_depth = self.depth
            elif tag == "li":
                self.current.append("- ")
            elif tag == "pre":
                self.pre += 1
            elif tag == "hr":
                self.current.append("________________________________")
                self.newline()
        elif tag == "a":
            self.href = dict(attrs).get("href")
            self.link_text = []
        elif tag in ("td", "th"):
            self.current.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag in _BLOCK:
            self.soft_newline()
            if tag == "blockquote":
                self.depth = max(0, self.depth - 1)
                self.line_depth = self.depth
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)
        elif tag == "a":
            href, text = self.href, "".join(self.link_text).strip()
            if href and href.lower().startswith(("http://", "https://")) and text and href not in text:
                self.current.append(f" ({href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        self.current.append(data)
        if self.href is not None:
            self.link_text.append(data)

    def text(self) -> str:
        self.soft_newline()
        out: list[str] = []
        blank = 0
        for depth, line in self.lines:
            if not line.strip():
                blank += 1
                if blank > 1:
                    continue
                out.append(">" * depth if depth else "")
                continue
            blank = 0
            out.append(("> " * depth) + line if depth else line)
        return "\n".join(out).strip("\n")


def html_to_text(html: str) -> str:
    """Readable text: blocks and <br> become lines, lists get "- ", blockquotes get "> " (so quote rules work)."""
    builder = _TextBuilder()
    try:
        builder.feed(html)
        builder.close()
    except Exception:  # HTMLParser is lenient; anything else falls back to stripping tags
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
    return builder.text()
