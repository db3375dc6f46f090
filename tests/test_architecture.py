"""``docs/architecture.md`` is true to the code: a row for every module, and every import of
the package's own modules is one its row allows and does not reach a layer above it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "vagg_bayes"

# Layers, bottom to top: a module may import its own layer and those below it (lazily too).
LAYERS = [
    {"errors", "spec", "provenance", "progress", "datasets"},
    {"data", "measures", "graph"},
    {"bayes", "equations"},
    {"effects"},
    {"report"},
    {"designs"},  # the shock design builds on report.result
    {"analysis", "pipeline"},
    {"refute", "compare"},
    {"cli", ""},  # "" is the package's own __init__
]


def _layer(module: str) -> int:
    top = module.split(".")[0]
    for rank, names in enumerate(LAYERS):
        if top in names:
            return rank
    raise AssertionError(f"module {module!r} is in no layer of tests/test_architecture.py")


def _rows() -> dict[str, str]:
    """``vagg_bayes/<path>.py`` -> the row's 'may import' cell; folders listed under 'Data
    and specs' -> ``"*"`` (anything)."""
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*`([^`]+\.py)`\s*\|.*\|(.*)\|\s*$", line)
        if m:
            path = m.group(1)
            rows[path if path.startswith("vagg_bayes/") else f"vagg_bayes/{path}"] = m.group(2)
            continue
        m = re.match(r"\|\s*`(vagg_bayes/[^`]+/)`\s*\|", line)
        if m:
            rows[m.group(1)] = "*"
    return rows


def _module_name(path: str) -> str:
    parts = path[:-3].split("/")[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name: str) -> bool:
    base = PKG / name.replace(".", "/")
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(id(n) for n in ast.walk(child))
    return skip


def _imports(path: str) -> set[str]:
    """The package modules ``path`` imports (relative to ``vagg_bayes``), lazily or not,
    ``TYPE_CHECKING`` blocks excluded."""
    me = _module_name(path)
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    used = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            used.update(a.name.partition(".")[2] for a in node.names
                        if a.name.split(".")[0] == "vagg_bayes")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = me.split(".") if me else []
                if not path.endswith("__init__.py"):
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "vagg_bayes":
                module = node.module.partition(".")[2]
            else:
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}" if module else alias.name
                used.add(sub if _is_module(sub) else module)
    used.discard(me)
    return used


def _allowed(module: str, cell: str) -> bool:
    if cell == "*" or "every subpackage" in cell or "vagg_bayes.*" in cell:
        return True
    for token in re.findall(r"`([^`]+)`", cell):
        prefix = token[:-2] if token.endswith(".*") else token
        if module == prefix or module.startswith(prefix + "."):
            return True
    return False


FILES = sorted(str(p.relative_to(ROOT)) for p in PKG.rglob("*.py"))


def _row_of(path: str, rows: dict[str, str]) -> str | None:
    if path in rows:
        return rows[path]
    for key, cell in rows.items():
        if key.endswith("/") and path.startswith(key):
            return cell
    return None


def test_every_module_has_a_row_and_every_row_a_module():
    rows = _rows()
    missing = [f for f in FILES if _row_of(f, rows) is None
               and (ROOT / f).read_text(encoding="utf-8").strip()]
    assert not missing, f"modules without a row in docs/architecture.md: {missing}"
    stale = [r for r in rows if not r.endswith("/") and r not in FILES]
    assert not stale, f"rows of docs/architecture.md without a module: {stale}"


@pytest.mark.parametrize("path", FILES)
def test_imports_are_the_ones_the_row_allows_and_never_from_a_layer_above(path):
    cell = _row_of(path, _rows())
    used = _imports(path)
    if cell is None:  # an empty package marker
        assert not used
        return
    undeclared = sorted(m for m in used if not _allowed(m, cell))
    assert not undeclared, (
        f"{path} imports {undeclared}, which its row in docs/architecture.md does not list")
    me = _module_name(path)
    above = sorted(m for m in used if _layer(m) > _layer(me))
    assert not above, f"{path} imports {above} from a layer above its own"


def test_the_checker_sees_lazy_imports_and_ignores_type_checking(tmp_path):
    """The import scan itself: a lazy import inside a function counts, a TYPE_CHECKING
    import does not (so a test of the rules above can fail)."""
    used = _imports("vagg_bayes/refute/base.py")
    assert "analysis" not in used and "errors" in used  # analysis only under TYPE_CHECKING
    assert "report.result" in _imports("vagg_bayes/analysis.py")
    assert not _allowed("report.render", "numpy, `bayes`, `effects`")
    assert _allowed("refute.judge", "`refute.*`") and _allowed("refute", "`refute.*`")
