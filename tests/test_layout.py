"""The README's layout section is the tree: every folder and file it names exists, and every area folder and module
under components/ is named (a module moved or added without updating the README fails here)."""

from __future__ import annotations

import re
from pathlib import Path

from tools.program import ROOT

FOLDER = re.compile(r"(?<![\w./-])([\w.-]+/)+(?![\w])")
FILE = re.compile(r"(?<![\w./{-])[\w.-]+\.(?:py|json|md|yaml)(?![\w])")
DESCRIPTION = 23  # the column where descriptions start


def layout_entries() -> dict[Path, str]:
    """Folder (or root file) -> the text of its entry, from the README's layout block."""
    text = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("```\n", 2)[1]
    entries: dict[Path, str] = {}
    parents: list[tuple[int, Path]] = []
    current: Path | None = None
    for line in text.splitlines():
        head = line[:DESCRIPTION]
        if not head.strip():  # a continuation line
            assert current is not None, line
            entries[current] += " " + line.strip()
            continue
        indent = len(head) - len(head.lstrip())
        name = head.split()[0]
        while parents and parents[-1][0] >= indent:
            parents.pop()
        current = (parents[-1][1] if parents else Path()) / name
        entries[current] = line[len(head) - len(head.lstrip()) + len(name) :].strip()
        if name.endswith("/"):
            parents.append((indent, current))
    return entries


def named_paths(text: str) -> tuple[set[Path], set[str]]:
    """The subfolders an entry names (relative to its folder, which is one of them) and the file names it names."""
    subfolders = {Path()} | {Path(m.group(0)) for m in FOLDER.finditer(text)}
    return subfolders, set(FILE.findall(text))


def test_every_path_the_layout_names_exists() -> None:
    for path, text in layout_entries().items():
        assert (ROOT / path).exists(), f"README layout: {path} does not exist"
        if not str(path).endswith("/") and (ROOT / path).is_file():
            continue
        subfolders, files = named_paths(text)
        for sub in subfolders:
            assert (ROOT / path / sub).is_dir(), f"README layout: {path / sub} does not exist"
        for name in files:
            assert any((ROOT / path / sub / name).exists() for sub in subfolders), (
                f"README layout: {name} is not in {path} (or a subfolder the entry names)"
            )


def test_every_area_and_module_is_in_the_layout() -> None:
    entries = {str(path).rstrip("/"): text for path, text in layout_entries().items()}
    components = ROOT / "components"
    for folder in sorted(p for p in components.iterdir() if p.is_dir() and p.name != "__pycache__"):
        key = f"components/{folder.name}"
        assert key in entries, f"README layout: add {key}/"
        subfolders, files = named_paths(entries[key])
        for module in folder.rglob("*.py"):
            if module.name == "__init__.py" or "__pycache__" in module.parts:
                continue
            relative = module.parent.relative_to(folder)
            where = f"README layout: name {module.relative_to(components)} in the {key}/ entry"
            assert relative in subfolders, where
            assert module.name in files, where
