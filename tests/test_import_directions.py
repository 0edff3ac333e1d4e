"""Imports between canarytrace's packages run one way: sdk <- store, dashboards <- evaluators
<- analysis <- collector. Parsed from the source, lazy imports included."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYER = {"canarytrace": 0, "canarytrace.store": 1, "canarytrace.dashboards": 1,
         "canarytrace.evaluators": 2, "canarytrace.analysis": 3, "canarytrace.collector": 4}


def package_of(module: str) -> str:
    return max((p for p in LAYER if module == p or module.startswith(p + ".")), key=len)


def package_dirs() -> dict[str, Path]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {name: ROOT / folder
            for name, folder in config["tool"]["setuptools"]["package-dir"].items()}


def imported_modules(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.append(node.module)
    return [m for m in modules if m == "canarytrace" or m.startswith("canarytrace.")]


def sources(package: str, folder: Path) -> list[Path]:
    # the SDK's folder is the root package: its subfolders (if any) are not the SDK
    return sorted(folder.glob("*.py") if package == "canarytrace" else folder.rglob("*.py"))


def upward_imports() -> list[str]:
    found = []
    for package, folder in package_dirs().items():
        for path in sources(package, folder):
            for module in imported_modules(path):
                target = package_of(module)
                if LAYER[target] > LAYER[package] or (
                        LAYER[target] == LAYER[package] and target != package):
                    found.append(f"{path.relative_to(ROOT)} imports {module}")
    return found


def test_every_layer_is_mapped_to_a_folder() -> None:
    assert set(package_dirs()) == set(LAYER)


def test_no_import_runs_back_up() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from canarytrace.collector.app import create_app\n")
    assert imported_modules(bad) == ["canarytrace.collector.app"]
    assert LAYER[package_of("canarytrace.collector.app")] > LAYER["canarytrace.store"]
