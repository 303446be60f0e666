"""The package's shape, read from its import graph (``ast``, nothing imported): no import runs upward, the tools
wing stands above the library, the adapters import only the core, and every module names its one idea."""
import ast
from functools import lru_cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ccrop_loaders"
SHIMS = {"cli", "demo", "diagnostics", "inspection", "objects_data", "sample_data", "bench"}  # moved to tools/
ADAPTERS = ("ffcv", "dali", "trainer")


def layer(module: str) -> tuple[int, str]:
    """(height, wing) of a module ``ccrop_loaders[.x[.y]]``: it may import lower heights, and its own wing."""
    parts = module.split(".")[1:]
    top = parts[0] if parts else ""
    if top == "_extras":
        return 0, "_extras"
    if top == "core":
        return 1, "core"
    if top in ("folder", "shards"):  # datasets on disk, backend-neutral
        return 2, "datasets"
    if top in ADAPTERS:
        return 3, top
    if top == "":
        return 4, "face"
    if top == "tools":
        return 5, "tools"
    if top in SHIMS and len(parts) == 1:
        return 6, "shim"
    raise AssertionError(f"{module} belongs to no wing: add it to the architecture")


@lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The ccrop_loaders modules ``name`` imports (resolved; ``from x import y`` counts y when it is a module)."""
    known = modules()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("ccrop_loaders"):
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & set(known)
            out |= subs or {target}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("ccrop_loaders")}
    return {m for m in out if m in known} | {m.rsplit(".", 1)[0] for m in out if m not in known
                                             and m.rsplit(".", 1)[0] in known}


@lru_cache(maxsize=1)
def graph() -> dict[str, set[str]]:
    return {name: imports(name, path) for name, path in modules().items()}


def test_no_import_runs_upward_and_adapters_import_only_the_core():
    bad = []
    for module, deps in graph().items():
        height, wing = layer(module)
        for dep in deps:
            dep_height, dep_wing = layer(dep)
            if dep_wing == wing:
                continue
            if dep_height >= height or (wing in ADAPTERS and dep_wing in ADAPTERS):
                bad.append(f"{module} ({wing}) imports {dep} ({dep_wing})")
    assert not bad, "\n".join(bad)


def test_the_library_never_imports_the_tools():
    library = [m for m in graph() if layer(m)[0] <= 3]
    assert not [(m, d) for m in library for d in graph()[m] if layer(d)[1] in ("tools", "shim", "face")]


def test_every_module_names_its_idea():
    missing = [name for name, path in modules().items()
               if not (ast.get_docstring(ast.parse(path.read_text())) or "").strip().splitlines()]
    assert not missing, missing


if __name__ == "__main__":  # print the graph: python tests/test_architecture.py
    for module, deps in graph().items():
        print(f"{module:40s} -> {', '.join(sorted(deps)) or '-'}")
