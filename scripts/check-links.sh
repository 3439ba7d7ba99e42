#!/usr/bin/env bash
# Checks the relative links of the repository's Markdown files:
#
#   scripts/check-links.sh [REPO_DIR]
#
# Every link and image in every *.md file of the repository (tracked, or new
# and not git-ignored) whose target is relative (no scheme such as https:)
# must name a file or directory of the repository, and a `#fragment` must name
# a heading of the target Markdown file, spelled as GitHub makes anchors
# (lower case, spaces become '-', punctuation dropped, repeats get -1, -2...).
# `#L12` and `#L12-L20` line anchors are accepted on other files.
# Inline links, images, reference definitions and HTML href/src are checked;
# code blocks and code spans are skipped.
#
# Prints each broken link as FILE:LINE and exits 1 when there is one, 0
# otherwise. Needs bash, git (optional: without a git work tree every file
# under REPO_DIR counts) and python3; installs nothing, takes well under a
# second.
set -euo pipefail

root="${1:-$(dirname "${BASH_SOURCE[0]}")/..}"
root="$(cd "$root" && pwd -P)"

command -v python3 >/dev/null 2>&1 || { echo "check-links: python3 is not on PATH" >&2; exit 2; }

# The repository's files, NUL-separated and relative to the root.
list_files() {
    if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 \
        && [[ "$(git -C "$root" rev-parse --show-toplevel)" == "$root" ]]; then
        git -C "$root" ls-files -z --cached --others --exclude-standard
    else
        (cd "$root" && find . \( -name .git -o -name target -o -name .test-services \) -prune \
            -o -type f -print0 | sed -z 's|^\./||')
    fi
}

# The checker itself; the file list comes on standard input.
checker="$(cat <<'PY'
import os, re, sys, urllib.parse

root = sys.argv[1]
files = set()
for name in sys.stdin.buffer.read().split(b"\0"):
    if name:
        name = name.decode("utf-8", "surrogateescape")
        # A file deleted from the work tree but still in the index is gone.
        if os.path.isfile(os.path.join(root, name)):
            files.add(name)
directories = {""}
for name in files:
    parts = name.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        directories.add("/".join(parts[:i]))

# Fences are recognised at any indentation: inside list items they are
# indented further than CommonMark's three spaces.
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s")


def without_code_blocks(text):
    """The text with fenced and indented code blocks blanked (newlines kept,
    so offsets still give the right line numbers)."""
    out, fence, in_indented_code, last_text = [], None, False, None
    for line in text.split("\n"):
        if fence:
            out.append("")
            m = FENCE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and line.strip() == m.group(1):
                fence = None
            continue
        m = FENCE.match(line)
        if m:
            fence = m.group(1)
            out.append("")
            continue
        blank = line.strip() == ""
        indented = re.match(r"^( {4,}|\t)", line) is not None
        # An indented line after a blank one is code, unless it continues a
        # list item (whose paragraphs are indented too).
        if indented and not blank and (in_indented_code or (
                out and out[-1].strip() == "" and
                (last_text is None or not (LIST_ITEM.match(last_text) or last_text[:1].isspace())))):
            in_indented_code = True
            out.append("")
            continue
        if not blank:
            in_indented_code = False
            last_text = line
        out.append(line)
    return "\n".join(out)


def without_code(text):
    """The text with code blocks and code spans blanked."""
    return CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), without_code_blocks(text))


def heading_text(raw):
    """What GitHub renders of a heading line: links and images become their
    text, code and emphasis markers and HTML tags go."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "").replace("*", "")


def slug(text):
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


anchor_cache = {}


def anchors(path):
    """The anchors GitHub gives the headings of a Markdown file, plus explicit
    <a name=…> / id=… anchors."""
    if path in anchor_cache:
        return anchor_cache[path]
    with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
        text = without_code_blocks(f.read())
    lines = text.split("\n")
    found, counts = set(), {}
    for i, line in enumerate(lines):
        heading = None
        m = re.match(r"^ {0,3}#{1,6}(?:\s+(.*?))?(?:\s+#+)?\s*$", line)
        if m:
            heading = m.group(1) or ""
        elif (i > 0 and re.match(r"^ {0,3}(=+|-+)\s*$", line) and lines[i - 1].strip()
              and not re.match(r"^\s*([-*+>|#]|\d+[.)])", lines[i - 1])):
            heading = lines[i - 1].strip()
        if heading is None:
            continue
        base = slug(heading_text(heading))
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    for m in re.finditer(r"""<a\s[^>]*\bname=["']([^"']+)|\bid=["']([^"']+)""", text):
        found.add(m.group(1) or m.group(2))
    anchor_cache[path] = found
    return found


LINK_START = re.compile(r"(?=(!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\())")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)", re.M)
HTML = re.compile(r"""<(?:a|img|source)\s[^>]*?\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.I)


def destination(text, start):
    """The link destination that begins at text[start] (just after "(")."""
    i = start
    while i < len(text) and text[i] in " \t\n":
        i += 1
    if i < len(text) and text[i] == "<":
        end = text.find(">", i)
        return text[i + 1:end] if end != -1 else None
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c.isspace():
            break
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                break
            depth -= 1
        j += 1
    return text[i:j]


def links(text):
    """(offset, destination) of every link in text."""
    seen = set()
    for m in LINK_START.finditer(text):
        at = m.start() + len(m.group(1))
        if at in seen:
            continue
        seen.add(at)
        dest = destination(text, at)
        if dest is not None:
            yield m.start(), dest
    for m in REFERENCE.finditer(text):
        dest = m.group(1)
        yield m.start(), dest[1:-1] if dest.startswith("<") else dest
    for m in HTML.finditer(text):
        yield m.start(), m.group(1)


def problem(source, dest):
    """Why dest (a link in source) is broken, or None."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", dest) or dest.startswith("//"):
        return None  # an absolute URL: not checked here
    path, _, fragment = dest.partition("#")
    path = urllib.parse.unquote(path.split("?", 1)[0])
    fragment = urllib.parse.unquote(fragment)
    if path == "":
        target = source
    else:
        base = "" if path.startswith("/") else os.path.dirname(source)
        target = os.path.normpath(os.path.join(base, path.lstrip("/"))).replace(os.sep, "/")
        if target == ".":
            target = ""
        if target == ".." or target.startswith("../"):
            return "points outside the repository"
        if target not in files and target not in directories:
            if os.path.exists(os.path.join(root, target)):
                return "names a file that is not in the repository (git-ignored)"
            return "no such file or directory in the repository"
    if not fragment:
        return None
    if target in directories:
        return f"#{fragment}: a directory has no anchors"
    if target.lower().endswith((".md", ".markdown")):
        if fragment not in anchors(target):
            return f"#{fragment}: no such heading in {target}"
        return None
    if re.fullmatch(r"L\d+(-L\d+)?", fragment):
        return None
    return f"#{fragment}: only #L<line> anchors can be checked in {target}"


markdown = sorted(f for f in files if f.lower().endswith(".md"))
broken = checked = 0
for source in markdown:
    with open(os.path.join(root, source), encoding="utf-8", errors="replace") as f:
        text = without_code(f.read())
    for offset, dest in sorted(links(text)):
        checked += 1
        reason = problem(source, dest.strip())
        if reason:
            broken += 1
            line = text.count("\n", 0, offset) + 1
            print(f"{source}:{line}: broken link ({dest}): {reason}")
sys.stdout.flush()
if broken:
    print(f"check-links: {broken} broken of {checked} links in {len(markdown)} Markdown files", file=sys.stderr)
    sys.exit(1)
print(f"check-links: {checked} links in {len(markdown)} Markdown files, all resolve")
PY
)"

list_files | python3 -c "$checker" "$root"
