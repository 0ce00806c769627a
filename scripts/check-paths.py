#!/usr/bin/env python3
"""Fails when a file path named in the project's documentation or in a comment
does not exist.

What is read
  - every Markdown file (README.md, docs/, the READMEs beside tests): all of
    its text, and the targets of its links (`[text](target)`);
  - comments: `/* */` and `//` in C, headers, assembly (.S) and linker
    scripts; `#` comments in Python, shell, CMake and config files, and
    Python's triple-quoted strings (docstrings and help texts).
Build directories (any top-level `build*`), `.git`, binary files and this
script (whose samples name missing files on purpose) are not read.

What counts as a path in the project (the rules, in order)
  1. A token of letters, digits and `_ . + -`, with at least one `/` between
     two such parts: `stage1/efi/gop.c`, `docs/`, `../load/elf.h`.
     Trailing punctuation (`.`, `,`, `:`, `;`, `)`) is not part of it.
  2. Not a path in the project, so never checked:
     - anything in a URL (`scheme://...`) or an absolute path (`/usr/share/...`,
       `/dev/...`): they lie outside the repository;
     - a token with a placeholder or a pattern in it: `<`, `>`, `*`, `?`, `{`,
       `}`, `$`, `%`, `...`; or, unless it exists, one with a part whose name
       (before its first dot) is in capitals only: `tests/boot/NAME.py`, `DIR/x`,
       `EFI/BOOT/BOOTX64.EFI` (an ESP path, not a repository one);
     - a token whose first part is neither an entry at the top of the
       repository (`stage1`, `docs`, `tests`, ...; `build*` is not one: build
       outputs) nor an entry of a directory between the file that names it
       and the top, nor `.` or `..`: `and/or`, `R/W`,
       `drivers/firmware/efi/...` (Linux's tree);
     - a token that follows, within the same line and at most 48 characters
       before it, the name of another project (Linux, Limine, EDK2, OVMF,
       U-Boot, QEMU, GRUB, gnu-efi, xv6, FreeBSD, OpenBSD, Hafnium,
       rust-osdev, BOOTBOOT, c-efi): `Linux's lib/rbtree.c` is Linux's file.
  3. A path in the project exists if it names a file or directory relative to
     - the repository's top, or the directory of the file that names it, or any
       directory between the two (`tests/corpus/x` in vmm/tests/avl.cmake is
       vmm/tests/corpus/x);
     - any directory named `include` (`kernel/vm.h` is a header as
       `#include <kernel/vm.h>` names it);
     - the same with `.c` or `.h` added, for a module named without its
       extension (`x86/cpu` in include/canopy/x86/cpu.h names itself);
     - a library's headers by their include name, and its modules by name:
       `vmm/avl.h` is vmm/include/vmm/avl.h, and the module `vmm/pt` is
       vmm/src/pt.c or vmm/include/vmm/pt.h (a library is a top directory with
       src/ and include/<itself>/); a source file is named with its directory
       (vmm/src/pt.c, not vmm/pt.c);
     - the build directory (`--build-dir`) or its directory that mirrors one of
       those above: documentation names build outputs such as
       `kernel/kernel.elf` or `./vmm_space_fuzz` the way a build tree holds
       them.
A Markdown link target that is not a URL or an `#anchor` is resolved relative
to the Markdown file, whatever it looks like.

    check-paths.py [--root DIR] [--build-dir DIR]   check the tree
    check-paths.py --self-test                      check the rules above

Prints each broken path as FILE:LINE: PATH, then `N passed, M failed` (paths
found and checked, paths missing); exits 1 if any is missing.
"""

import argparse
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

C_LIKE = (".c", ".h", ".S", ".ld")
HASH_COMMENTS = (".py", ".sh", ".cmake", ".cfg", ".txt", ".gitignore")
MARKDOWN = (".md",)

TOKEN = re.compile(r"(?<![\w./+-])((?:\.\.?/)*[\w.+-]+(?:/[\w.+-]+)+/?)")
URL = re.compile(r"\b[a-zA-Z][\w+.-]*://\S+")
LINK = re.compile(r"\]\(([^)\s]+)\)")
PLACEHOLDER = re.compile(r"[<>*?{}$%]|\.\.\.")
OTHER_PROJECTS = ("Linux", "Limine", "EDK2", "edk2", "OVMF", "U-Boot", "QEMU", "GRUB", "gnu-efi",
                  "xv6", "FreeBSD", "OpenBSD", "Hafnium", "rust-osdev", "BOOTBOOT", "c-efi")
FOREIGN_WINDOW = 48


def c_comments(text):
    """(line number, comment text) for each comment of C-like source; string
    and character literals are skipped."""
    out = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            body = text[i:end]
            for k, part in enumerate(body.split("\n")):
                out.append((line + k, part))
            line += body.count("\n")
            i = end
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append((line, text[i:end]))
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
        else:
            i += 1
    return out


def hash_comments(text, python):
    """(line number, comment text): `#` at a line's start or after a blank, and
    in Python the lines of triple-quoted strings."""
    out = []
    in_triple = None
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw
        if python:
            if in_triple:
                end = line.find(in_triple)
                out.append((number, line if end < 0 else line[:end]))
                if end < 0:
                    continue
                line = line[end + 3:]
                in_triple = None
            m = re.search(r'("""|\'\'\')', line)
            if m:
                rest = line[m.end():]
                end = rest.find(m.group(1))
                out.append((number, rest if end < 0 else rest[:end]))
                if end < 0:
                    in_triple = m.group(1)
                    continue
                line = line[:m.start()] + rest[end + 3:]
        m = re.search(r"(?:^|\s)#(.*)$", line)
        if m:
            out.append((number, m.group(1)))
    return out


def texts_of(path, text):
    """The (line, text) pieces of a file that may name paths."""
    name = os.path.basename(path)
    if name.endswith(MARKDOWN):
        return list(enumerate(text.split("\n"), 1))
    if name.endswith(C_LIKE):
        return c_comments(text)
    if name.endswith(HASH_COMMENTS) or name == "CMakeLists.txt":
        return hash_comments(text, name.endswith(".py"))
    return []


def candidates(line_text):
    """The tokens of one line that rule 1 makes paths, with rule 2's URL,
    placeholder and foreign-project cases taken out: (token, column)."""
    masked = URL.sub(lambda m: " " * len(m.group(0)), line_text)
    out = []
    for m in TOKEN.finditer(masked):
        token = m.group(1).rstrip(".,:;)")
        start = m.start(1)
        if start > 0 and masked[start - 1] in "/~":
            continue  # part of an absolute path or of a home-relative one
        if PLACEHOLDER.search(token) or PLACEHOLDER.search(masked[max(0, start - 1):start]):
            continue
        before = masked[max(0, start - FOREIGN_WINDOW):start]
        if any(re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", before) for p in OTHER_PROJECTS):
            continue
        out.append((token, start))
    return out


def capitals_only(token):
    """A part whose name before its first dot is in capitals only: NAME.py, DIR, EFI."""
    parts = [p for p in token.split("/") if p not in ("", ".", "..")]
    return any(re.fullmatch(r"[A-Z0-9_+-]+", p.split(".")[0]) and re.search(r"[A-Z]", p)
               for p in parts)


class Tree:
    """The repository (and optionally its build directory) to resolve paths in."""

    def __init__(self, root, build_dir=None):
        self.root = os.path.abspath(root)
        self.build_dir = os.path.abspath(build_dir) if build_dir else None
        self.top = {e for e in os.listdir(self.root)
                    if not e.startswith("build") and e != ".git"}
        self.includes = []
        self.libraries = set()
        for top, dirs, _files in os.walk(self.root):
            rel = os.path.relpath(top, self.root)
            if rel == ".":
                dirs[:] = [d for d in dirs if d in self.top]
            if os.path.basename(top) == "include":
                self.includes.append(top)
        for lib in self.top:
            if os.path.isdir(os.path.join(self.root, lib, "src")) and \
                    os.path.isdir(os.path.join(self.root, lib, "include", lib)):
                self.libraries.add(lib)

    def _between(self, where):
        """The directories from `where` up to the top, relative to the top."""
        rel = os.path.relpath(where, self.root)
        out = []
        while rel not in (".", "") and not rel.startswith(".."):
            out.append(rel)
            rel = os.path.dirname(rel)
        return out + ["."]

    def is_project_path(self, token, where):
        """Rule 2's last case: the first part names something at the top or in
        a directory between the naming file and the top (or the token starts
        with ./ or ../)."""
        first = token.split("/")[0]
        if first in (".", ".."):
            return True
        if first in self.top:
            return True
        return any(os.path.exists(os.path.join(self.root, d, first))
                   for d in self._between(where) if d != ".")

    def _library_forms(self, token):
        lib, _, rest = token.partition("/")
        if lib not in self.libraries or not rest:
            return []
        if rest.endswith(".h"):
            return [os.path.join(lib, "include", lib, rest)]
        if "." in os.path.basename(rest):
            return []  # a source file is named with its directory: vmm/src/pt.c
        return [os.path.join(lib, "src", rest + ".c"), os.path.join(lib, "include", lib,
                                                                   rest + ".h")]

    def exists(self, token, where):
        """Rule 3."""
        between = self._between(where)
        bases = [os.path.join(self.root, d) for d in between] + self.includes
        if self.build_dir:
            bases += [os.path.join(self.build_dir, d) for d in between]
        forms = [token] + self._library_forms(token)
        if "." not in os.path.basename(token.rstrip("/")):
            forms += [token + ".c", token + ".h"]  # a module: x86/cpu is x86/cpu.h
        return any(os.path.exists(os.path.normpath(os.path.join(b, f)))
                   for b in bases for f in forms)


def link_targets(line_text):
    for m in LINK.finditer(line_text):
        target = m.group(1).split("#", 1)[0]
        if target and not URL.match(m.group(1)) and not target.startswith(("mailto:", "/")):
            yield target


def check_file(tree, path, text):
    """[(line, path, found)] for every project path the file names."""
    where = os.path.dirname(os.path.abspath(path))
    results = []
    for number, piece in texts_of(path, text):
        seen = set()
        if path.endswith(MARKDOWN):
            for target in link_targets(piece):
                seen.add(target)
                found = os.path.exists(os.path.normpath(os.path.join(where, target)))
                results.append((number, target, found))
        for token, _col in candidates(piece):
            if token in seen or not tree.is_project_path(token, where):
                continue
            seen.add(token)
            found = tree.exists(token, where)
            if not found and capitals_only(token):
                continue  # a placeholder or a path outside the tree
            results.append((number, token, found))
    return results


def walk(root):
    for top, dirs, files in os.walk(root):
        rel = os.path.relpath(top, root)
        if rel == ".":
            dirs[:] = [d for d in dirs if not d.startswith("build") and d != ".git"]
        dirs.sort()
        for f in sorted(files):
            yield os.path.join(top, f)


def check_tree(root, build_dir):
    tree = Tree(root, build_dir)
    checked = missing = 0
    for path in walk(root):
        if os.path.abspath(path) == os.path.abspath(__file__):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, OSError):
            continue  # binary files name no paths
        for number, token, found in check_file(tree, path, text):
            checked += 1
            if not found:
                missing += 1
                print(f"{os.path.relpath(path, root)}:{number}: {token}: no such file or "
                      "directory")
    return checked, missing


SELF_TEST = [
    # (file name, text, paths that must be reported missing)
    ("a.c", "/* see stage1/efi/nothere.c and stage1/efi/gop.c */\n", ["stage1/efi/nothere.c"]),
    ("a.c", 'const char *s = "stage1/efi/nothere.c"; // docs/gone.md\n', ["docs/gone.md"]),
    ("a.md", "Read [the page](gone.md) and [that](stage1.md) and `docs/stage1.md`.\n",
     ["gone.md"]),
    ("a.md", "https://github.com/x/stage1/efi/nothere.c and /usr/share/OVMF/OVMF_CODE.fd\n", []),
    ("a.md", "build/canopy.img, tests/boot/NAME.py, DIR/<case>.elf, stage1/*.c, and/or R/W\n",
     []),
    ("a.md", "Linux's lib/rbtree.c, drivers/firmware/efi/libstub/gop.c, EFI/BOOT/BOOTX64.EFI\n",
     []),
    ("a.md", "kernel/kernel.elf (a build output), ../stage1/nothere.h\n", ["../stage1/nothere.h"]),
    ("a.py", '"""Uses tests/boot/harness.py and tests/boot/gone.py."""\nx = "docs/no.md"  # docs/'
     "nope.md\n", ["tests/boot/gone.py", "docs/nope.md"]),
    ("a.sh", 'echo "$#" # scripts/gone.sh\nfind . -path "docs/no.md"\n', ["scripts/gone.sh"]),
    ("a.c", "/* vmm/pt, vmm/src/pt.c, vmm/avl.h, kernel/vm.h; vmm/pt.c, vmm/ptx */\n",
     ["vmm/pt.c", "vmm/ptx"]),
    ("a.md", "README.md: [readme](../README.md), build/qmp.sock\n", []),
]


def self_test():
    """Rules 1-3 on the samples above, in a scratch tree shaped like the real
    one (a few of its files, the vmm library's layout, a kernel include
    directory) and a build directory holding kernel/kernel.elf."""
    import tempfile
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "repo")
        for rel in ("docs/stage1.md", "stage1/efi/gop.c", "tests/boot/harness.py",
                    "scripts/x.sh", "vmm/src/pt.c", "vmm/include/vmm/avl.h",
                    "kernel/include/kernel/vm.h", "README.md"):
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            open(os.path.join(root, rel), "w").close()
        os.makedirs(os.path.join(root, "build"))
        build = os.path.join(tmp, "out")
        os.makedirs(os.path.join(build, "kernel"))
        open(os.path.join(build, "kernel", "kernel.elf"), "w").close()
        tree = Tree(root, build)
        for name, text, want in SELF_TEST:
            path = os.path.join(root, "docs", name)
            got = [t for _n, t, found in check_file(tree, path, text) if not found]
            if got == want:
                passed += 1
            else:
                failed += 1
                print(f"FAIL self-test {name} {text!r}: reported {got}, expected {want}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=ROOT, help="the repository (default: this script's)")
    p.add_argument("--build-dir", help="a build directory whose outputs the docs may name")
    p.add_argument("--self-test", action="store_true", help="check the rules on samples")
    args = p.parse_args()
    if args.self_test:
        return self_test()
    checked, missing = check_tree(args.root, args.build_dir)
    print(f"{checked - missing} passed, {missing} failed")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
