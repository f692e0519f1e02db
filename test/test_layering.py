"""The layering of the README's module map, read from the source (ast; nothing is imported).

Every ``import`` counts, function-local ones included: a lazy import still ties two modules
together. Fails on import circles inside ``depth_kd_core``, on loss modules reaching for models,
on the core reaching for ROS, on the upward imports issue 17 removed, on ``data/`` sources
(bags, synthetic, kitti) reaching into each other instead of going through the shared data
modules, and on camera helpers taken from the augmentation module instead of ``data/camera.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("depth_kd_core", "depth_kd_ros")

# module -> module prefixes it must not import (each was an upward import once; issue 17)
FORBIDDEN = {
    "depth_kd_core.config_build": ("depth_kd_core.models", "depth_kd_core.recipes",
                                   "depth_kd_core.training", "depth_kd_core.config"),
    "depth_kd_core.config": ("depth_kd_core.models", "depth_kd_core.recipes",
                             "depth_kd_core.training"),
    "depth_kd_core.registry": ("depth_kd_core.config", "depth_kd_core.models",
                               "depth_kd_core.recipes"),
    "depth_kd_core.checkpoint": ("depth_kd_core.models", "depth_kd_core.recipes"),
    "depth_kd_core.inference": ("depth_kd_core.data.transforms", "depth_kd_core.training"),
    "depth_kd_core.export_check": ("depth_kd_core.data.transforms",),
    "depth_kd_core.data.camera": ("depth_kd_core.data.transforms",),
    "depth_kd_core.data.bags.messages": ("depth_kd_core.data.transforms",),
    "depth_kd_core.data.semantics": ("depth_kd_core.models", "depth_kd_core.losses"),
    "depth_kd_core.evaluate": ("depth_kd_core.training",),
    "depth_kd_ros.conversions": ("depth_kd_core.data.transforms",),
    # the README's order: data, layers -> losses, models -> recipes -> training -> entry points
    "depth_kd_core.layers": ("depth_kd_core.data", "depth_kd_core.models", "depth_kd_core.losses",
                             "depth_kd_core.recipes", "depth_kd_core.training"),
    "depth_kd_core.data": ("depth_kd_core.models", "depth_kd_core.losses",
                           "depth_kd_core.recipes", "depth_kd_core.training",
                           "depth_kd_core.inference"),
    "depth_kd_core.models": ("depth_kd_core.recipes", "depth_kd_core.training"),
    "depth_kd_core.losses": ("depth_kd_core.recipes", "depth_kd_core.training"),
    "depth_kd_core.recipes": ("depth_kd_core.training", "depth_kd_core.train",
                              "depth_kd_core.evaluate"),
}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for both packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = module_files()


def imported_names(name: str, path: Path) -> set[str]:
    """Return the absolute dotted names ``name`` imports.

    A module, or ``package.attribute`` resolved to the submodule when one exists and to the
    package otherwise.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in MODULES else base)
    return out


IMPORTS = {name: imported_names(name, path) for name, path in MODULES.items()}


def core_graph() -> dict[str, set[str]]:
    """depth_kd_core module -> the depth_kd_core modules it imports."""
    return {name: {m for m in deps if m in MODULES and m != name and
                   m.startswith("depth_kd_core")}
            for name, deps in IMPORTS.items() if name.startswith("depth_kd_core")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (a list of modules, first = last) or None; iterative DFS."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def offending(module_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    """List ``module: import`` for each import of a forbidden prefix by a module under it."""
    hits = []
    for name, deps in IMPORTS.items():
        if name == module_prefix or name.startswith(module_prefix + "."):
            hits += [f"{name}: {d}" for d in sorted(deps)
                     if any(d == f or d.startswith(f + ".") for f in forbidden)]
    return hits


def test_finds_a_circle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_circles_in_the_core():
    cycle = find_cycle(core_graph())
    assert cycle is None, f"import circle: {' -> '.join(cycle)}"


def test_losses_do_not_import_models():
    assert offending("depth_kd_core.losses", ("depth_kd_core.models",)) == []


def test_core_does_not_import_ros():
    assert offending("depth_kd_core", ("depth_kd_ros", "rclpy")) == []


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_no_upward_imports(module):
    assert module in MODULES, f"{module} moved: update FORBIDDEN in this test"
    assert offending(module, FORBIDDEN[module]) == []


def test_one_device_picker():
    """Devices are chosen by ``runtime.select_device`` only (no second picker elsewhere)."""
    pickers = [f"{name}.{node.name}" for name, path in MODULES.items()
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name in
               ("select_device", "pick_device", "choose_device")]
    assert pickers == ["depth_kd_core.runtime.select_device"]


# ------------------------------------------------------------------------- data/ by source

DATA = "depth_kd_core.data"
# Each source package imports the shared top-level data modules, never another source or the
# dataset factory; the one crossing is the synthetic world recorded as a bag and as KITTI.
DATA_SOURCES = (f"{DATA}.bags", f"{DATA}.synthetic", f"{DATA}.kitti")
DATA_SHARED = (f"{DATA}.camera", f"{DATA}.schema", f"{DATA}.transforms", f"{DATA}.config",
               f"{DATA}.semantics", f"{DATA}.depth_png", f"{DATA}.teacher_depth")
DATA_FACTORY = f"{DATA}.datasets"  # build_datasets: the one module that knows every source
SOURCE_CROSSINGS = {f"{DATA}.synthetic.recording": (f"{DATA}.bags.writer", f"{DATA}.kitti")}
CAMERA, TRANSFORMS = f"{DATA}.camera", f"{DATA}.transforms"
SCANNED = (*PACKAGES, "benchmarks", "test", "launch")  # where camera helpers are looked for


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _source(name: str) -> str | None:
    return next((s for s in DATA_SOURCES if _under(name, s)), None)


def source_crossings(imports: dict[str, set[str]]) -> list[str]:
    """List ``module: import`` for each import by a data source of another source or the factory.

    Imports in the ``SOURCE_CROSSINGS`` a source is allowed are not listed.
    """
    hits = []
    for name, deps in imports.items():
        own = _source(name)
        if own is None:
            continue
        allowed = SOURCE_CROSSINGS.get(name, ())
        hits += [f"{name}: {d}" for d in sorted(deps)
                 if _under(d, DATA_FACTORY) or (_source(d) not in (None, own)
                                                and not any(_under(d, a) for a in allowed))]
    return hits


def test_every_data_module_is_a_source_shared_or_the_factory():
    top = {name for name in MODULES if name.startswith(DATA + ".") and name.count(".") == 2}
    assert top == {*DATA_SOURCES, *DATA_SHARED, DATA_FACTORY}


def test_data_sources_import_no_other_source():
    assert source_crossings(IMPORTS) == []
    assert source_crossings({f"{DATA}.bags.reader": {f"{DATA}.synthetic.world"},
                             f"{DATA}.synthetic.world": {f"{DATA}.bags.codec"},
                             f"{DATA}.kitti": {DATA_FACTORY}}) == [
        f"{DATA}.bags.reader: {DATA}.synthetic.world",
        f"{DATA}.synthetic.world: {DATA}.bags.codec", f"{DATA}.kitti: {DATA_FACTORY}"]


def test_shared_data_modules_import_no_source():
    hits = [h for m in DATA_SHARED for h in offending(m, (*DATA_SOURCES, DATA_FACTORY))]
    assert hits == []


def camera_names() -> set[str]:
    """Names ``data/camera.py`` defines at its top level."""
    names = set()
    for node in ast.parse(MODULES[CAMERA].read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def camera_helpers_from_transforms(source: str, names: set[str]) -> list[str]:
    """Return the camera helpers ``source`` takes from the augmentation module.

    Imported from it, or read as attributes of it (``T.scale_intrinsics`` after
    ``from depth_kd_core.data import transforms as T``).
    """
    tree = ast.parse(source)
    modules, hits = {TRANSFORMS}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == TRANSFORMS:
            hits += [a.name for a in node.names if a.name in names]
        elif isinstance(node, ast.ImportFrom) and node.module == DATA:
            modules.update(a.asname or a.name for a in node.names if a.name == "transforms")
        elif isinstance(node, ast.Import):
            modules.update(a.asname for a in node.names if a.name == TRANSFORMS and a.asname)
    hits += [f"{ast.unparse(node.value)}.{node.attr}" for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr in names
             and ast.unparse(node.value) in modules]
    return hits


def test_camera_helpers_come_from_the_camera_module_only():
    names = camera_names()
    assert {"scale_intrinsics", "resize_image", "CameraCalibration"} <= names
    assert camera_helpers_from_transforms(
        "from depth_kd_core.data.transforms import Crop, resize_image\n"
        "from depth_kd_core.data import transforms as T\nK = T.scale_intrinsics(K, 2, 2)\n",
        names) == ["resize_image", "T.scale_intrinsics"]
    hits = [f"{path.relative_to(REPO_ROOT)}: {hit}" for folder in SCANNED
            for path in sorted((REPO_ROOT / folder).rglob("*.py"))
            for hit in camera_helpers_from_transforms(path.read_text(), names)]
    assert hits == []


def name_checks(source: str) -> list[str]:
    """Find ``<expr>.cfg.name`` compared with a string literal (==, !=, in).

    Such a comparison special-cases a model or recipe by its registry name instead of a
    capability declared on its config.
    """
    def is_cfg_name(node: ast.AST) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "name" and \
            isinstance(node.value, ast.Attribute) and node.value.attr == "cfg"

    def has_str(node: ast.AST) -> bool:
        return any(isinstance(n, ast.Constant) and isinstance(n.value, str)
                   for n in ast.walk(node))

    hits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(is_cfg_name(s) for s in sides) and any(has_str(s) for s in sides
                                                           if not is_cfg_name(s)):
                hits.append(f"line {node.lineno}: {ast.unparse(node)}")
    return hits


def test_finds_a_name_check_when_there_is_one():
    assert name_checks('x = model.cfg.name == "sgbm_teacher"') != []
    assert name_checks('if t.cfg.name in ("a", "b"): pass') != []
    assert name_checks('if cfg.name == "adam": pass') == []  # a config's own dispatch
    assert name_checks("x = model.cfg.classical") == []


def test_no_model_is_special_cased_by_name_outside_models():
    """Callers ask a model's declared capabilities, never compare its name with a string.

    The capabilities: ``ModelCfg.classical``, ``batch_keys``, ``has_sigma``, ``stereo_input``.
    """
    hits = [f"{name} {hit}" for name, path in MODULES.items()
            if not name.startswith("depth_kd_core.models")
            for hit in name_checks(path.read_text())]
    assert hits == []
