"""The package's shape: layers that only import downwards, no import circle, one seam per axis
(families, priors, data sets found through entry points, the built-ins' too), no name of a
family or data set compared outside its own module, no module over 400 lines."""

from __future__ import annotations

import ast
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "pyro_dvae"

#: Lowest first; a module may import its own layer and those below it.
LAYERS = [
    ("errors", "atomic", "checkpoint", "registry", "elbo", "distributed", "fastpath", "pretrained"),
    ("config",),
    ("data",),
    ("nets", "priors"),
    ("models",),
    ("posterior", "plotting", "runs", "arviz_export"),
    ("training", "evaluation"),
    ("prediction", "reports"),
    ("cli", "__main__", ""),  # "": the package's own __init__, its public API
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def _imports(module: str, path: Path) -> set[str]:
    """Modules of the package that ``module`` imports anywhere (functions too), except under
    ``if TYPE_CHECKING:`` (annotations only)."""
    tree = ast.parse(path.read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("pyro_dvae"):
                target = node.module.removeprefix("pyro_dvae").lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import x` imports the submodule x
                sub = f"{target}.{alias.name}".lstrip(".")
                found.add(sub if sub in MODULES else target)
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("pyro_dvae").lstrip(".") for a in node.names
                      if a.name.startswith("pyro_dvae")}
    return {m for m in found if m in MODULES and m != module}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def test_every_module_imports_only_its_own_layer_and_below():
    upward = [f"{m} ({LAYERS[_layer(m)][0]} layer) imports {d}" for m, deps in GRAPH.items() for d in deps
              if _layer(d) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    # A package's __init__ may import its own submodules; a submodule importing its package's
    # __init__ (for a name it re-exports) is the usual direction, not a circle.
    def edges(module):
        return {d for d in GRAPH[module] if not module.startswith(d + ".") or d == ""}

    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(module: str, trail: list[str]) -> bool:
        state[module] = 1
        for dep in edges(module):
            if state.get(dep) == 1:
                cycle.extend(trail[trail.index(dep):] + [dep] if dep in trail else [module, dep])
                return True
            if dep not in state and visit(dep, [*trail, dep]):
                return True
        state[module] = 2
        return False

    for module in GRAPH:
        if module not in state and visit(module, [module]):
            break
    assert not cycle, " -> ".join(cycle)


def test_no_module_is_over_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


#: Each name and the modules that own it (its own package or module).
OWNERS = {
    "dvae": ("models.dvae", "config"), "dsa": ("models.dsa",), "drnet": ("models.drnet",),
    "sprites": ("data.sprites", "evaluation.sprites", "evaluation.judges.sprites"),
    "moving-mnist": ("data.moving_mnist",), "moving-mnist-1": ("data.moving_mnist", "evaluation.digits"),
    "digits": ("evaluation.judges.digits", "evaluation.digits"), "squares": ("data.synthetic",),
}


def test_no_family_or_data_set_name_is_compared_outside_its_own_module():
    offences = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            for operand in operands:
                values = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
                for value in values:
                    if isinstance(value, ast.Constant) and value.value in OWNERS and not any(
                            module == owner or module.startswith(owner + ".") for owner in OWNERS[value.value]):
                        offences.append(f"{module}:{node.lineno} compares with {value.value!r}")
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("group,names", [
    ("pyro_dvae.families", {"dvae", "dsa", "drnet"}),
    ("pyro_dvae.z_priors", {"conditional-gaussian", "fitted-aggregate", "standard-normal"}),
    ("pyro_dvae.f_priors", {"standard-normal", "flow", "fitted-flow"}),
    ("pyro_dvae.datasets", {"sprites", "squares", "moving-mnist", "moving-mnist-1"}),
])
def test_the_built_ins_are_declared_as_entry_points_like_a_plugin(group, names):
    from pyro_dvae import registry

    declared = {entry.name for entry in metadata.entry_points(group=group) if entry.value.startswith("pyro_dvae.")}
    assert names <= declared
    table = next(r for r in (registry.FAMILIES, registry.Z_PRIORS, registry.F_PRIORS, registry.DATASETS)
                 if r.group == group)
    for name in names:  # and each loads through the registry
        assert table.get(name) is not None
