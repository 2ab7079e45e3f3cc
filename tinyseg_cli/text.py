"""Text that came from input (file names, class names, table values, library messages),
made safe to print or to write into a document."""

from __future__ import annotations


def printable(text: str) -> str:
    r"""``text`` safe to print: control and other non-printable characters escaped (``\x1b``,
    ``\n``, ``\u202e``), bytes of a name that was not UTF-8 shown as ``\xNN``. Anything
    that came from input (file names, table values, library messages) goes through here, so
    no input can move the cursor, retitle the terminal or hide text (SPEC §9)."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char.isprintable():
            out.append(char)
        elif 0xDC80 <= ord(char) <= 0xDCFF:  # os.fsdecode's escape of an undecodable byte
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)
