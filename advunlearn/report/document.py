"""A markdown document's ``<!-- report NAME PART -->`` blocks (the README's tables), checked against and
updated from the published results (``advunlearn report DIR --check/--update DOC``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from .records import _dedupe, load_records
from .tables import _table1_by_setting, _table2_by_setting, strong_table


BLOCK_RE = re.compile(r"<!-- report (?P<name>[\w.-]+) (?P<part>[\w/.-]+) -->\n(?P<body>.*?)<!-- /report -->", re.S)


_OPEN_RE = re.compile(r"<!-- report (?P<name>[\w.-]+) (?P<part>[\w/.-]+) -->")


_CLOSE = "<!-- /report -->"


_MARKER_RE = re.compile(r"^\s*<!--\s*/?\s*report\b")  # anything that looks like a marker, well formed or not


@dataclass
class Block:
    """One ``<!-- report NAME PART -->`` ... ``<!-- /report -->`` block of a document (lines 1-based)."""

    name: str
    part: str
    line: int          # the opening marker's line
    end_line: int      # the closing marker's line
    start: int         # character offsets: the opening marker's line starts here ...
    end: int           # ... and the closing marker's line ends here (before its newline)
    body: str


def parse_blocks(text: str, document: str | Path = "the document") -> list[Block]:
    """Every report block of ``text``; a ConfigError naming the marker and its line when the markers do
    not pair up (an opening marker left open, a closing marker with no opening one, a malformed one).

    A marker is a line of its own: ``<!-- report NAME PART -->`` opens a block, ``<!-- /report -->``
    closes it; blocks do not nest.  Any other line that starts like a marker is an error too, so that
    a typo in a marker never lets a rewrite run past the end of its block.  Markers quoted in a fenced
    code block (between ``` or ~~~ lines) are text, not markers.
    """
    from ..core.config import ConfigError

    blocks: list[Block] = []
    opened = None  # (match, its line number, the offsets where its line starts and where the body starts)
    offset = 0
    fence = None  # the fence (``` or ~~~) of the code block we are in, outside report blocks: markers there are text
    for no, line in enumerate(re.findall(r"[^\n]*\n|[^\n]+$", text), 1):
        stripped = line.strip()
        if opened is None and stripped[:3] in ("```", "~~~"):
            fence = None if fence == stripped[:3] else fence or stripped[:3]
        elif fence is None and _MARKER_RE.match(line):
            m = _OPEN_RE.fullmatch(stripped)
            if m:
                if opened is not None:
                    raise ConfigError(f"{document}: marker '{opened[0].group(0)}' on line {opened[1]} is not closed "
                                      f"before the next '{stripped}' on line {no}; add '{_CLOSE}' after its table")
                opened = (m, no, offset, offset + len(line))
            elif stripped == _CLOSE:
                if opened is None:
                    raise ConfigError(f"{document}: '{_CLOSE}' on line {no} closes no block; every block starts "
                                      "with '<!-- report NAME PART -->' on a line of its own")
                m, first, start, body_start = opened
                blocks.append(Block(m.group("name"), m.group("part"), first, no, start, offset + len(line.rstrip("\r\n")),
                                    text[body_start:offset]))
                opened = None
            else:
                raise ConfigError(f"{document}: marker '{stripped}' on line {no} is malformed; a block is "
                                  f"'<!-- report NAME PART -->' ... '{_CLOSE}', each on a line of its own")
        offset += len(line)
    if opened is not None:
        raise ConfigError(f"{document}: marker '{opened[0].group(0)}' on line {opened[1]} is never closed; add "
                          f"'{_CLOSE}' on a line of its own after its table")
    return blocks


def report_parts(records: Iterable[Mapping]) -> dict[str, str]:
    """Every markdown piece the report builds, by name: ``table1``, ``table2``, ``strong`` (all settings
    together), ``table1/<dataset>/<scheme>``, ``table2/<dataset>/<scheme>`` (one table each) and
    ``paired`` (Ours against the best baseline per setting, :mod:`advunlearn.report.comparison`)."""
    recs = _dedupe(records)
    parts: dict[str, str] = {}
    for name, by_setting in (("table1", _table1_by_setting(recs)), ("table2", _table2_by_setting(recs))):
        if not by_setting:
            continue
        parts[name] = "\n".join(t.to_markdown() for _, _, t in by_setting)
        for ds, sc, t in by_setting:
            parts[f"{name}/{ds}/{sc}"] = t.to_markdown()
    if any(isinstance(r.get("strong"), Mapping) for r in recs):
        parts["strong"] = strong_table(recs)
    from .comparison import paired, paired_markdown

    rows = paired(recs)
    if rows:  # Ours against the best baseline, seed by seed (needs Ours, a baseline and two seeds)
        parts["paired"] = paired_markdown(rows)
    return parts


def document_parts(results_dir: str | Path) -> dict[str, str]:
    """:func:`report_parts` of the result records under ``results_dir``, plus ``ulira`` (every U-LiRA
    record), ``ulira/<scheme>`` (one scheme's) and, with several seeds, ``ulira-seeds/<scheme>`` (mean and
    interval over seeds) when the folder holds ``advunlearn ulira`` records, and ``standing/<EARLIER>`` for
    every sibling folder ``<name>-<suffix>`` (``EARLIER`` its name: the same batch run earlier, e.g. under
    the values of an older tuning, kept beside it) that holds result records: each method's mean Avg.
    Disparity and rank there and here (:func:`advunlearn.report.comparison.standing`)."""
    from ..core.config import ConfigError
    from .ulira import load_ulira_records, ulira_markdown, ulira_seeds_markdown

    results_dir = Path(results_dir)
    exclude = (results_dir / "report").resolve()
    records = load_records(results_dir, exclude=exclude)
    ulira = load_ulira_records(results_dir, exclude=exclude)
    if not records and not ulira:
        raise ConfigError(f"no result records found under {results_dir}")
    parts = report_parts(records) if records else {}
    if ulira:
        parts["ulira"] = ulira_markdown(ulira)
        for scheme in sorted({r["scheme"] for r in ulira}):
            parts[f"ulira/{scheme}"] = ulira_markdown([r for r in ulira if r["scheme"] == scheme])
            if len({r["seed"] for r in ulira if r["scheme"] == scheme}) > 1:  # the spread over seeds
                parts[f"ulira-seeds/{scheme}"] = ulira_seeds_markdown([r for r in ulira if r["scheme"] == scheme])
    if records:
        from .comparison import standing, standing_markdown

        here = results_dir.resolve()
        for earlier in sorted(here.parent.glob(f"{here.name}-*")):
            before = load_records(earlier, exclude=(earlier / "report").resolve()) if earlier.is_dir() else []
            if before:
                parts[f"standing/{earlier.name}"] = standing_markdown(standing(before, records))
    return parts


def _read_document(document: str | Path, flag: str = "document") -> str:
    """The text of a markdown document, or a ConfigError saying what is wrong with the path."""
    from ..core.config import ConfigError

    path = Path(document)
    if not path.exists():
        raise ConfigError(f"{flag} {path} does not exist; give the markdown file holding the "
                          "'<!-- report NAME PART -->' blocks, e.g. README.md")
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give the markdown file holding the "
                          "'<!-- report NAME PART -->' blocks, e.g. README.md")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{flag} {path} is not UTF-8 text ({e.reason} at byte {e.start}); give a markdown file") from None
    except OSError as e:
        raise ConfigError(f"{flag} {path} cannot be read ({e.strerror or e})") from None


def _blocks(text: str, name: str, document: str | Path = "the document") -> list[Block]:
    return [b for b in parse_blocks(text, document) if b.name == name]


def check_document(results_dir: str | Path, document: str | Path) -> list[str]:
    """Compare every ``<!-- report NAME PART -->`` block of ``document`` whose NAME is the results
    folder's name with what the report builds from that folder now; returns the problems (empty = all
    match).  A document with no block for the folder is a problem too: nothing would be checked.
    Markers that do not pair up, a missing document and unreadable records are ConfigErrors."""
    import difflib

    results_dir = Path(results_dir)
    name = results_dir.resolve().name
    text = _read_document(document, "--check")
    blocks = _blocks(text, name, document)  # the markers first: a broken document fails before any reading
    parts = document_parts(results_dir)
    if not blocks:
        return [f"{document} has no '<!-- report {name} PART -->' block; parts available: {sorted(parts)}"]
    problems = []
    for m in blocks:
        part = m.part
        if part not in parts:
            problems.append(f"block {name} {part} (line {m.line}): the report builds no such part; "
                            f"available: {', '.join(sorted(parts))}")
            continue
        want, have = parts[part].strip(), m.body.strip()
        if want != have:
            diff = "\n".join(difflib.unified_diff(have.splitlines(), want.splitlines(), f"{document} ({part})",
                                                   f"report of {results_dir} ({part})", lineterm="", n=0))
            problems.append(f"block {name} {part} differs from the results (line {m.line} of {document}):\n{diff}")
    return problems


def update_document(results_dir: str | Path, document: str | Path) -> int:
    """Rewrite the blocks of ``document`` that name ``results_dir`` from its results; returns how many.

    All or nothing: the document is left byte for byte as it was when its markers do not pair up, when
    a block names a part the report does not build (the error lists the parts it builds), when it has
    no block for the folder, or when a result file cannot be read (ConfigError for each).
    """
    import os

    from ..core.config import ConfigError
    from ..core.store import atomic_write_bytes

    results_dir = Path(results_dir)
    name = results_dir.resolve().name
    text = _read_document(document, "--update")
    blocks = _blocks(text, name, document)
    path = Path(document)
    if not os.access(path, os.W_OK) or not os.access(path.resolve().parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--update {document} is not writable (the file or its folder); make it writable")
    parts = document_parts(results_dir)
    if not blocks:
        raise ConfigError(f"{document} has no '<!-- report {name} PART -->' block, so nothing would be updated; "
                          f"add one for a part of {sorted(parts)}")
    unknown = [b for b in blocks if b.part not in parts]
    if unknown:
        raise ConfigError("; ".join(f"block {name} {b.part!r} on line {b.line}" for b in unknown)
                          + f": the report builds no such part; allowed: {', '.join(sorted(parts))}")
    pieces, at = [], 0
    for b in blocks:
        pieces += [text[at:b.start], f"<!-- report {name} {b.part} -->\n{parts[b.part].strip()}\n{_CLOSE}"]
        at = b.end
    pieces.append(text[at:])
    new = "".join(pieces)
    if new != text:
        atomic_write_bytes(document, new.encode("utf-8"))
    return len(blocks)
