"""The architecture of beta_core, checked: one-way layers, no cycles, no private names across
modules, no UI in the library, internal imports at module level only.

LAYERS is the architecture. A module may import only from modules in lower layers, at any
depth (module level or inside a function). The README's "Architecture" section shows the
same table; ``test_readme_matches_the_layer_table`` keeps them equal.
"""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "beta_core"

LAYERS = {
    0: ("records", "schedules", "presets", "env", "stats", "hooks", "zoo",  # schemas; rules; presets; env; stats;
        "provenance", "glossary", "storebase",        # hooks; models by spec; the environment a run used; words;
        "trackers", "fieldtypes"),                    # the store's error, run ids, owners, connection; other
                                                      # trackers' runs read by their own readers; typed config
                                                      # fields (types, help, parsing, seed and LR bounds)
    1: ("damping", "schemas", "subconfigs",           # damping ratio; what arrives from outside, validated once
                                                      # (pydantic); a run's data and model configs, without torch
        "lifecycle", "metrics", "checkpoints", "transfer",  # the store's parts: status changes, records, weights,
        "mirror", "annotations", "sysmon", "formats"),  # runs between stores; records to the user's tracker;
                                                      # tags, notes and names; the machine while a run trains;
                                                      # how numbers read for people
    2: ("store", "data", "models"),                   # the run store: the facade over its parts, listing runs;
                                                      # datasets, loaders; nets, evaluation
    3: ("config", "attribution", "curvature", "reports", "track",  # config, planner; attribution; Hessian
        "verdicts", "figures", "importer", "explorer",  # spectra; tables; your own loop; verdicts; charts; other
        "timeleft"),                                  # trackers' runs as our records; the runs explorer's SQL;
                                                      # how long jobs and the queue have left
    4: ("engine", "sweeps", "localise",               # the training loop with hooks; sweep plans; planted faults;
        "integrations", "integrations.lightning",     # the Lightning and Hugging Face callbacks (optional extras)
        "integrations.hf"),
    5: ("surgery", "queries", "jobs", "jobs.specs",   # retrain chosen groups, verify, controls; reading a sweep's
        "jobs.ray_backend"),                          # members, the newest localisation; job kinds and specs;
                                                      # Ray tasks
    6: ("bundles", "findings", "jobs.manager"),       # bundles: checked against every job kind's config; the
                                                      # paper's claims on stored runs; queued jobs on workers/Ray
    7: ("cli.stored", "html_report", "jobs.bodies"),  # reading stored runs, one-line errors; offline HTML reports;
                                                      # one body per job kind, the one execution path
    8: ("cli.common", "cli.imports", "jobs.worker",  # progress, running a job in-process, printing a report;
        "cli.reporting"),                             # import from TensorBoard, MLflow, CSV; the warm worker's
                                                      # loop; the HTML report of stored runs (both without torch)
    9: ("cli.diagnostics", "cli.sweep", "cli.verdict"),  # attribute, surgery, overlap, plant-fault; sweep; verdict,
                                                         # findings
    10: ("cli.commands",),                            # every command's parser and handler
    11: ("cli",),                                     # the command line: reading stored runs without torch, the
                                                      # rest through cli.commands (loaded by name)
    12: ("__main__", "__init__"),                     # python -m beta_core
}
LAYER_OF = {m: n for n, mods in LAYERS.items() for m in mods}
# Imports allowed inside functions: optional or heavy third-party dependencies only.
LAZY_OK = {("trackers", "pandas"),  # a CSV export is read when one is given
           ("mirror", "torch"), ("mirror", "mlflow"),  # the user's tracker, an optional extra
           ("sysmon", "torch"),  # GPU memory, only on a CUDA run
           ("data", "PIL"), ("data", "torchvision"), ("jobs.ray_backend", "ray"), ("jobs.ray_backend", "torch"),
           ("checkpoints", "torch"),  # weights only: listing and reading runs starts without torch
           ("zoo", "torchvision"), ("zoo", "timm"), ("zoo", "torch"),  # a spec is parsed and trusted without torch
           ("jobs.manager", "torch"),  # a GPU's free memory, asked only before a second local worker starts
           # a guarded import of the optional extra, so its absence is one line naming it
           ("integrations.lightning", "lightning"), ("integrations.lightning", "pytorch_lightning"),
           ("integrations.hf", "transformers")}
# Internal imports allowed inside a function: the manager builds its Ray runner (whose task trains,
# importing torch) only with backend ray, so the app's pages start without torch.
INTERNAL_LAZY = {("jobs.manager", "beta_core.jobs.ray_backend")}
UI = ("streamlit",)
# Plotly figures are data (a JSON spec), not UI: the charts have one home, drawn by the pages and
# written into offline reports and figure files (docs/decisions.md). Only these modules build them.
FIGURES = ("figures", "html_report")


def _name(path: Path) -> str:
    """``beta_core/cli/sweep.py`` -> ``cli.sweep``; a subpackage's ``__init__`` is the package."""
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    return ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)


def _modules() -> dict[str, ast.Module]:
    return {_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PKG.rglob("*.py"))}


def _package(mod: str) -> list[str]:
    """The package a module's relative imports start from (a subpackage's __init__ is its own)."""
    is_pkg = (PKG / mod.replace(".", "/") / "__init__.py").exists() and mod != "__init__"
    return mod.split(".") if is_pkg else mod.split(".")[:-1]


def _imports(tree: ast.Module, mod: str = "__init__"):
    """(target, names, depth) for every import; target is 'beta_core.x[.y]' for internal ones."""
    top = set(id(n) for n in tree.body)
    for node in ast.walk(tree):
        nested = id(node) not in top
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(mod)[: len(_package(mod)) - (node.level - 1)]
                if node.module is None:  # from . import x
                    for a in node.names:
                        yield "beta_core." + ".".join([*base, a.name]), [], nested
                else:
                    yield "beta_core." + ".".join([*base, node.module]), [a.name for a in node.names], nested
            else:
                yield node.module or "", [a.name for a in node.names], nested
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], nested


def _internal_edges():
    edges = {}
    for mod, tree in _modules().items():
        for target, _names, _ in _imports(tree, mod):
            if target.startswith("beta_core."):
                edges.setdefault(mod, set()).add(target.removeprefix("beta_core."))
    return edges


def test_every_module_has_a_layer():
    assert set(_modules()) == set(LAYER_OF), "add new modules to LAYERS (and to the README table)"


def test_imports_go_down_the_layers():
    bad = [f"{m} (layer {LAYER_OF[m]}) imports {t} (layer {LAYER_OF[t]})"
           for m, ts in _internal_edges().items() for t in ts if LAYER_OF[t] >= LAYER_OF[m]]
    assert not bad, bad


def test_no_import_cycles():
    edges = _internal_edges()
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(path + [m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for t in edges.get(m, ()):
            visit(t, path + [m])
        state[m] = 2

    for m in _modules():
        visit(m, [])


def test_no_private_names_cross_modules():
    bad = [f"{m}: from {t} import {n}" for m, tree in _modules().items()
           for t, names, _ in _imports(tree, m) if t.startswith("beta_core.")
           for n in names if n.startswith("_")]
    assert not bad, bad


def test_internal_imports_at_module_level():
    bad = []
    for m, tree in _modules().items():
        for t, _, nested in _imports(tree, m):
            allowed = (m, t) in INTERNAL_LAZY or (not t.startswith("beta_core") and (m, t.split(".")[0]) in LAZY_OK)
            if nested and not allowed:
                bad.append(f"{m}: import {t} inside a function")
    assert not bad, bad


def test_library_is_ui_free():
    bad = [f"{m}: {t}" for m, tree in _modules().items() for t, _, _ in _imports(tree, m)
           if t.split(".")[0] in UI or (t.split(".")[0] == "plotly" and m not in FIGURES)]
    assert not bad, bad


def test_readme_matches_the_layer_table():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| L(\d+) \| ([^|]+) \|", section, re.M)
    readme = {int(n): tuple(sorted(m.strip(" `") for m in mods.split(","))) for n, mods in rows}
    assert readme == {n: tuple(sorted(mods)) for n, mods in LAYERS.items()}


def test_package_docstring_lists_every_module():
    import beta_core

    rows = re.findall(r"^\s+L(\d+)\s+(.+)$", beta_core.__doc__, re.M)
    listed = {int(n): tuple(sorted(m.strip() for m in mods.split(","))) for n, mods in rows}
    assert listed == {n: tuple(sorted(mods)) for n, mods in LAYERS.items() if n < max(LAYERS)}


def test_the_checks_can_fail(tmp_path):
    """The checker sees imports inside functions and relative imports (a checker that finds
    nothing would pass everything)."""
    tree = ast.parse("from .store import Store\ndef f():\n    from .jobs import _x\n    import streamlit\n")
    found = list(_imports(tree, "engine"))
    assert ("beta_core.store", ["Store"], False) in found
    assert ("beta_core.jobs", ["_x"], True) in found and ("streamlit", [], True) in found
    found = list(_imports(ast.parse("from ..store import Store\nfrom . import sweep\n"), "cli.common"))
    assert ("beta_core.store", ["Store"], False) in found and ("beta_core.cli.sweep", [], False) in found


@pytest.mark.parametrize("bad", ["tests/test_*.py", "benchmarks/*.py"])
def test_helpers_not_imported_from_conftest(bad):
    hits = [str(p) for p in ROOT.glob(bad) if re.search(r"^\s*from conftest import", p.read_text(), re.M)]
    assert not hits, f"import test helpers from tests/helpers.py, not conftest: {hits}"
