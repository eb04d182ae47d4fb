"""The import layers of ../shared/DESIGN.md, checked on the source (AST, every import).

data -> models -> train -> pillars (sparsity, attacks, defenses, certify, unlearn, backdoor)
-> experiments -> report -> cli/commands. Lower layers never import higher ones and the
pillars meet only in experiments, report and the CLI. Function-level imports count too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import sparta

SRC = Path(sparta.__file__).resolve().parent
PILLARS = ("sparsity", "attacks", "defenses", "certify", "unlearn", "backdoor")
ABOVE_PILLARS = ("experiments", "report", "cli", "commands", "__main__")
BASE = ("data", "models", "train")
# the documented exceptions: (importer package, imported package)
ALLOWED = {
    ("defenses", "attacks"),  # adversarial training crafts its examples with the attacks
    # the BaB falsifier is passed in as a callable (certify.verify.Falsifier), not imported
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every sparta module ``path`` imports (absolute names), with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod == "sparta":  # from sparta import models, io ...
                out += [(f"sparta.{a.name}", node.lineno) for a in node.names]
            else:
                out.append((mod, node.lineno))
    return [(m, line) for m, line in out if m == "sparta" or m.startswith("sparta.")]


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        me = _module_name(path)
        layer = _top(me)
        for target, line in _imports(path):
            other = _top(target)
            if not other or other == layer:
                continue
            where = f"{path.relative_to(SRC.parent)}:{line}: {me} imports {target}"
            if layer in PILLARS and other in PILLARS:
                if (layer, other) in ALLOWED:
                    continue
                bad.append(f"{where} (pillars meet only in experiments/report/cli)")
            elif layer in PILLARS and other in ABOVE_PILLARS:
                bad.append(f"{where} (a pillar imports a layer above it)")
            elif layer in BASE and (other in PILLARS or other in ABOVE_PILLARS):
                bad.append(f"{where} (data/models/train import no pillar or layer above)")
            elif layer == "experiments" and other in ("report", "cli", "commands"):
                bad.append(f"{where} (experiments sit below report and the CLI)")
    return bad


def test_no_import_crosses_the_layers():
    assert violations() == []


def test_the_walker_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "sparta"
    (pkg / "unlearn").mkdir(parents=True)
    (pkg / "train").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "unlearn" / "__init__.py").write_text("from .api import run\n")
    (pkg / "unlearn" / "api.py").write_text(
        "def run():\n    from sparta.sparsity.pruning import prune\n    from ..report import x\n"
    )
    (pkg / "train" / "loop.py").write_text("from sparta import attacks\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", pkg)
    found = violations()
    assert len(found) == 3, found
    assert any("sparta.unlearn.api imports sparta.sparsity.pruning" in v for v in found)
    assert any("imports sparta.report" in v for v in found)
    assert any("sparta.train.loop imports sparta.attacks" in v for v in found)
