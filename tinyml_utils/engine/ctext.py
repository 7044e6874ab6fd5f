"""Text that is safe in generated C: identifiers, comments, string literals, constant arrays."""
from __future__ import annotations

import re

import numpy as np


def c_ident(name: str) -> str:
    """A C identifier from a tensor or layer name."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII)
    return ident if re.match(r"[A-Za-z_]", ident) else f"_{ident}"


def c_comment(text: str) -> str:
    """`text` made safe inside a /* ... */ comment: a name with "*/" would end the comment early and
    one with "/*" trips gcc's -Wcomment (an error under -Werror). Other text is unchanged."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return text.replace("*/", "* /").replace("/*", "/ *")


def c_string(text: str) -> str:
    """`text` as the body of a C string literal: backslashes, quotes, "?" (trigraphs: "??/" is a backslash
    under -std=c99) and non-printable characters escaped."""
    out = []
    for ch in str(text):
        if ch in '\\"?':
            out.append("\\" + ch)
        elif ch.isascii() and ch.isprintable():
            out.append(ch)
        else:                                  # UTF-8 bytes as octal escapes (hex would swallow following digits)
            out.extend(f"\\{b:03o}" for b in ch.encode())
    return "".join(out)


def c_array(ctype: str, name: str, values, per_line: int = 20) -> str:
    """`static const <ctype> name[n] = {...};` with `per_line` values a line."""
    values = [int(v) for v in np.ravel(values)]
    if not values:
        raise ValueError(f"{name}: an empty C array")
    lines = [", ".join(str(v) for v in values[i:i + per_line]) for i in range(0, len(values), per_line)]
    body = ",\n  ".join(lines)
    return f"static const {ctype} {name}[{len(values)}] = {{\n  {body}\n}};\n"
