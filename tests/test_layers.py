"""The layers of the code point one way: trackdesk's shared pieces ← affiliates ← conversions ←
postbacks ← portal ← demo, and no module imports another that (directly or not) imports it back.

Read from the source with `ast`, imports inside functions included: a deferred import is still a
dependency (affiliates.models once imported the assistant from inside a method).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trackdesk", "affiliates", "conversions", "postbacks", "apitokens", "portal", "demo")
# The composition root wires every app together; it is above all of them.
COMPOSITION_ROOT = {"trackdesk.settings", "trackdesk.urls", "trackdesk.wsgi", "trackdesk.asgi"}
# What each layer may import from the project, besides itself.
ALLOWED = {
    "trackdesk": set(),
    "affiliates": {"trackdesk"},
    "conversions": {"trackdesk", "affiliates"},
    "apitokens": {"trackdesk"},
    "postbacks": {"trackdesk", "affiliates", "conversions"},
    "portal": {"trackdesk", "affiliates", "conversions", "postbacks"},
    "demo": {"trackdesk", "affiliates", "conversions", "postbacks", "portal"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[module_name(path)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports (a `from package import submodule` counts as the
    submodule)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {target for target in found if target in modules and target != name}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_lower_apps_never_import_higher_ones():
    wrong = []
    for name, targets in import_graph().items():
        if name in COMPOSITION_ROOT:
            continue
        layer = name.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != layer and (other not in ALLOWED[layer] or target in COMPOSITION_ROOT):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = import_graph()
    cycles = [sorted(group) for group in strongly_connected(graph) if len(group) > 1]
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


def test_the_checks_see_deferred_relative_and_submodule_imports(tmp_path):
    """The reader the tests above rely on: an import inside a function, a relative import and
    `from package import submodule` all count; a cycle of three makes one group."""
    source = tmp_path / "fake.py"
    source.write_text(
        "from . import models\ndef later():\n    from postbacks.delivery import single\n"
    )
    modules = {"affiliates.models": None, "postbacks.delivery.single": None}
    assert imports_of("affiliates.fake", source, modules) == {
        "affiliates.models",
        "postbacks.delivery.single",
    }
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    groups = [sorted(group) for group in strongly_connected(graph) if len(group) > 1]
    assert groups == [["a", "b", "c"]]


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph has a few hundred modules)."""
    index, low, on_stack, stack, groups = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == node:
                        break
                groups.append(group)
    return groups
