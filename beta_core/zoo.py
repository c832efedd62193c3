"""Models from outside this package, named by a spec string.

=====================================  ============================================================
spec                                   the model
=====================================  ============================================================
``torchvision:NAME``                   any torchvision classifier (``torchvision_names()``), built
                                       with the dataset's number of classes
``torchvision:NAME?weights=DEFAULT``   its pretrained weights (any of its weight names), the
                                       classifier head replaced for the dataset's classes
``timm:NAME`` (``?weights=DEFAULT``)   a timm model (``pip install 'beta-core[timm]'``)
``path/to/file.py:factory``            your factory: ``factory(num_classes) -> nn.Module``;
``package.module:factory``             ``in_channels=`` / ``image_size=`` are passed when it takes them
=====================================  ============================================================

A spec is parsed (``parse_spec``) when a config is made, which imports nothing; the model is
built (``build``) where a run trains.

Trust follows origin. A spec that names code (a file or ``package.module:factory``) is built only
when it is trusted in this process: given on this command line (``--model``, ``--trust-model``),
listed in ``BETA_MODELS``, named by ``track``'s ``save_model(factory=...)``, or passed to
:func:`trust` by the caller. One that arrived in a bundle or a stored config is shown, never
imported, until then. Even a trusted spec must name your own factory: a Python function or an
``nn.Module`` class outside the standard library (``os:system``, ``sys:exit``,
``builtins:input`` are refused before anything is imported), and a factory that calls
``sys.exit`` is an error, not the end of the process. ``check`` builds it once before any run exists and runs
two images through it, so an import error, a factory that raises, weights that cannot be had
or an input too small for the model is one line at launch, not a failed run.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import io
import os
import re
import socket
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a model is built: parsing and trusting a spec need none
    from torch import nn

__all__ = ["Spec", "parse_spec", "is_spec", "build", "check", "torchvision_names", "ModelSpecError", "trust",
           "is_trusted", "trusted", "untrust_all"]

KINDS = ("torchvision", "timm", "file", "module")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
EXPECTED = ("expected a built-in name, torchvision:NAME, timm:NAME (either with ?weights=DEFAULT), "
            "path/to/file.py:factory or package.module:factory")


class ModelSpecError(ValueError):
    """A model spec that cannot be parsed, imported, built or run."""


@dataclass(frozen=True)
class Spec:
    kind: str                  # one of KINDS
    target: str                # model name, file path or module
    factory: str | None = None  # file/module: the factory's name
    weights: str | None = None  # torchvision/timm: pretrained weights (DEFAULT or a weights name)

    @property
    def text(self) -> str:
        if self.kind in ("torchvision", "timm"):
            return f"{self.kind}:{self.target}" + (f"?weights={self.weights}" if self.weights else "")
        return f"{self.target}:{self.factory}"


def is_spec(name: str) -> bool:
    """Whether ``name`` is a spec (it has a ``:``), not a built-in model name."""
    return ":" in name


def parse_spec(text: str) -> Spec:
    """The spec ``text`` names; file paths become absolute, so a stored config rebuilds the
    model from any working directory.

    >>> parse_spec("torchvision:resnet18?weights=DEFAULT")
    Spec(kind='torchvision', target='resnet18', factory=None, weights='DEFAULT')
    >>> parse_spec("mypkg.nets:make").kind
    'module'
    """
    bad = ModelSpecError(f"Invalid model spec {text!r} ({EXPECTED})")
    if not isinstance(text, str) or ":" not in text:
        raise bad
    head, _, rest = text.partition(":")
    if head in ("torchvision", "timm"):
        name, _, query = rest.partition("?")
        weights = None
        if query:
            key, _, value = query.partition("=")
            if key != "weights" or not value:
                raise ModelSpecError(f"Invalid model option {query!r} in {text!r} (expected ?weights=DEFAULT "
                                     "or ?weights=WEIGHTS_NAME)")
            weights = value
        if not _NAME.match(name):
            raise bad
        if head == "torchvision" and name not in torchvision_names():
            raise ModelSpecError(f"Unknown torchvision model {name!r} (expected one of "
                                 "torchvision.models.list_models(), e.g. resnet18, mobilenet_v3_small; "
                                 "`beta-core models` lists them)")
        return Spec(head, name, weights=weights)
    target, _, factory = text.rpartition(":")
    if not _NAME.match(factory or "") or "." in factory:
        raise bad
    if target.endswith(".py"):
        return Spec("file", str(Path(target).expanduser().resolve()), factory)
    if not _NAME.match(target):
        raise bad
    return Spec("module", target, factory)


@cache
def torchvision_names() -> tuple[str, ...]:
    """torchvision's classification models (not detection or segmentation)."""
    import torchvision
    return tuple(torchvision.models.list_models(module=torchvision.models))


# ------------------------------------------------------------------ trust
_TRUSTED: set[str] = set()


def _code(spec: Spec) -> bool:
    return spec.kind in ("file", "module")


def trust(*texts: str) -> None:
    """Trust the code specs ``texts`` in this process (the user gave them here); other kinds need
    no trust. A spec that cannot be parsed is a :class:`ModelSpecError`."""
    for t in texts:
        spec = parse_spec(t)
        if _code(spec):
            _TRUSTED.add(spec.text)


def untrust_all() -> None:
    """Forget what :func:`trust` was given (``BETA_MODELS`` stays trusted)."""
    _TRUSTED.clear()


def trusted() -> tuple[str, ...]:
    """The code specs trusted here: :func:`trust`'s and ``BETA_MODELS``'s (what a worker
    process started from here is handed)."""
    env = []
    for t in (os.environ.get("BETA_MODELS") or "").split(","):
        try:
            env.append(parse_spec(t.strip()).text)
        except ModelSpecError:  # env.settings() says what is wrong with the variable
            continue
    return tuple(sorted(_TRUSTED | {t for t in env if _code(parse_spec(t))}))


def is_trusted(text: str) -> bool:
    """Whether the model ``text`` names may be built here: a built-in, torchvision or timm
    model, or code this process was told to trust."""
    spec = parse_spec(text) if is_spec(text) else None
    return spec is None or not _code(spec) or spec.text in trusted()


def _refuse_untrusted(spec: Spec) -> None:
    if not is_trusted(spec.text):
        raise ModelSpecError(
            f"Model {spec.text!r} names code (a {'file' if spec.kind == 'file' else 'module'}) that was not given "
            f"on this command: a stored or bundled spec is shown, never imported, until you trust it (expected "
            f"--trust-model '{spec.text}' on this command, the spec in BETA_MODELS, or zoo.trust('{spec.text}') in "
            "Python)")


def _refuse_non_factory(spec: Spec) -> None:
    """Before importing: a module spec must not name the standard library (``os:system``)."""
    if spec.kind == "module":
        top = spec.target.partition(".")[0]
        if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "__main__":
            raise ModelSpecError(f"Model {spec.text!r} names the standard library's {top} (expected your own "
                                 "factory: a function or nn.Module class that returns an nn.Module)")


# ------------------------------------------------------------------ building
_FILE_MODULES: dict[str, object] = {}


def _factory(spec: Spec):
    from torch import nn

    _refuse_untrusted(spec)
    _refuse_non_factory(spec)
    try:
        if spec.kind == "file":
            path = Path(spec.target)
            if not path.is_file():
                raise FileNotFoundError(f"no file {spec.target}")
            key = f"beta_user_{path.stem}_{hashlib.sha1(spec.target.encode()).hexdigest()[:8]}"
            if key not in _FILE_MODULES:
                loader = importlib.util.spec_from_file_location(key, path)
                module = importlib.util.module_from_spec(loader)
                sys.modules[key] = module  # dataclasses and pickling look a class's module up here
                loader.loader.exec_module(module)
                _FILE_MODULES[key] = module
            module = _FILE_MODULES[key]
        else:
            module = importlib.import_module(spec.target)
        fn = getattr(module, spec.factory)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - any import failure is the user's code: one line naming it
        raise ModelSpecError(f"Model {spec.text!r} could not be imported: {type(e).__name__}: {e}") from None
    if not (inspect.isfunction(fn) or (inspect.isclass(fn) and issubclass(fn, nn.Module))):
        raise ModelSpecError(f"Model {spec.text!r}: {spec.factory} is a {type(fn).__name__} (expected a Python "
                             "function or nn.Module class: factory(num_classes) -> nn.Module)")
    return fn


def _weights_file(name: str, weights: str):
    """torchvision's weights entry for ``name`` and the file its cache keeps it in."""
    import torch
    import torchvision
    try:
        entry = torchvision.models.get_model_weights(name).verify(weights)
    except Exception as e:  # noqa: BLE001 - torchvision says KeyError or ValueError by model
        raise ModelSpecError(f"Unknown weights {weights!r} for torchvision:{name} ({e}; expected DEFAULT or "
                             "one of torchvision.models.get_model_weights(NAME))") from None
    return entry, Path(torch.hub.get_dir()) / "checkpoints" / Path(entry.url).name


def _fetch_weights(name: str, weights: str) -> None:
    """Make sure the weights are in torch's cache: there already, or downloaded now (10 s to
    connect); otherwise one line saying how to put them there."""
    import torch

    entry, path = _weights_file(name, weights)
    if path.exists():
        return
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        # torch.hub's "Downloading: ..." line (on stdout): our one line says what happened
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            torch.hub.load_state_dict_from_url(entry.url, progress=False, check_hash=True)
    except Exception as e:  # noqa: BLE001 - no network, proxy, hash: all mean "not available here"
        raise ModelSpecError(
            f"Pretrained weights for torchvision:{name} ({entry}) are not in torch's cache ({path}) and could not "
            f"be downloaded ({type(e).__name__}: {str(e)[:80]}); pre-fetch them on a machine with a network: "
            f"python -c \"import torchvision; torchvision.models.get_model('{name}', weights='{weights}')\" "
            f"and copy {path.name} into {path.parent}") from None
    finally:
        socket.setdefaulttimeout(old)


def _replace_head(model: nn.Module, num_classes: int, spec: Spec) -> nn.Module:
    """The last Linear layer (the classifier head of torchvision's models) made anew for
    ``num_classes`` outputs."""
    from torch import nn

    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelSpecError(f"Model {spec.text!r}: no Linear classifier head to replace for {num_classes} classes "
                             "(expected a model whose last layer is nn.Linear; train it without weights=)")
    name, old = linears[-1]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    return model


def build(spec: Spec, num_classes: int, image_size: int = 32, in_channels: int = 3,
          pretrained: bool = True) -> nn.Module:
    """The model ``spec`` names, with ``num_classes`` outputs. ``pretrained=False`` skips the
    weights download where a checkpoint is loaded over them anyway."""
    from torch import nn

    if spec.kind == "torchvision":
        import torchvision
        if spec.weights and pretrained:
            _fetch_weights(spec.target, spec.weights)
            model = torchvision.models.get_model(spec.target, weights=spec.weights)
            return model if num_classes == _out_features(model) else _replace_head(model, num_classes, spec)
        return torchvision.models.get_model(spec.target, num_classes=num_classes)
    if spec.kind == "timm":
        try:
            import timm
        except ImportError:
            raise ModelSpecError(f"Model {spec.text!r} needs timm, which is not installed (expected "
                                 "pip install 'beta-core[timm]')") from None
        try:
            return timm.create_model(spec.target, pretrained=bool(spec.weights and pretrained),
                                     num_classes=num_classes, in_chans=in_channels)
        except Exception as e:  # noqa: BLE001 - unknown name, no network for weights: one line
            raise ModelSpecError(f"Model {spec.text!r} could not be built by timm: {type(e).__name__}: "
                                 f"{str(e)[:200]}") from None
    fn = _factory(spec)
    try:
        params = inspect.signature(fn).parameters
        takes = lambda k: k in params or any(p.kind is p.VAR_KEYWORD for p in params.values())  # noqa: E731
        kw = {k: v for k, v in (("in_channels", in_channels), ("image_size", image_size)) if takes(k)}
        model = fn(num_classes, **kw)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the factory is the user's code: one line naming it
        raise ModelSpecError(f"Model {spec.text!r} could not be built: {type(e).__name__}: {e}") from None
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"Model {spec.text!r}: the factory returned {type(model).__name__} (expected "
                             "an nn.Module)")
    return model


def _out_features(model: nn.Module) -> int | None:
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def check(model: nn.Module, spec_text: str, image_size: int) -> None:
    """Two ``image_size`` images through ``model`` (eval mode, no gradient): a model that needs
    a bigger input says so here, in one line naming ``--resize``."""
    import torch

    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, 3, image_size, image_size))
    except Exception as e:  # noqa: BLE001 - shape errors come as RuntimeError, ValueError or AssertionError
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ModelSpecError(f"Model {spec_text!r} does not run on {image_size}x{image_size} images ({first}); "
                             "expected --resize N with N its input size (e.g. 224 for ViT)") from None
    finally:
        model.train(was)
