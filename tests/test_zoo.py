"""Any model: torchvision by name, timm, your factory; the layer-group rule; the pipeline on them
(train, attribution, surgery, curvature per group, planted faults), all on CPU without a network."""
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from beta_core import zoo
from beta_core.attribution import AttributionConfig
from beta_core.cli import main
from beta_core.config import resolve_config
from beta_core.curvature import group_eigenvalues
from beta_core.engine import check_data
from beta_core.env import EnvError, settings
from beta_core.jobs.bodies import attribute_run, execute_run, load_trained
from beta_core.localise import apply_fault, fault_applies
from beta_core.models import ModelConfig, build_model, check_model, group_modules, layer_groups, loss_fn, run_groups
from beta_core.records import train_config_of
from beta_core.store import Store, StoreError
from beta_core.surgery import SurgeryConfig, surgery_run_config

FACTORIES = Path(__file__).resolve().parent / "data" / "user_models.py"
TINY_VIT = f"{FACTORIES}:tiny_vit"
pytestmark = pytest.mark.usefixtures("trust_factories")  # the user gave these factories (the trust rule: test_trust)


def names(spec: str, **kw) -> list[str]:
    return [g.name for g in layer_groups(build_model(ModelConfig(spec, **kw), pretrained=False))]


# ------------------------------------------------------------------ the group rule
def test_torchvision_resnet18_has_the_papers_seven_groups():
    assert names("torchvision:resnet18") == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]


@pytest.mark.parametrize("spec", ["torchvision:mobilenet_v3_small", "torchvision:efficientnet_b0", TINY_VIT])
def test_big_containers_are_split_and_the_count_lands_in_4_to_12(spec):
    model = build_model(ModelConfig(spec), pretrained=False)
    groups = layer_groups(model)
    assert 4 <= len(groups) <= 12
    # every parameter in exactly one group, in the model's own order
    from beta_core.models import group_parameters
    flat = [n for ps in group_parameters(model).values() for n, _ in ps]
    assert flat == [n for n, _ in model.named_parameters()]
    assert sum(g.fraction for g in groups) == pytest.approx(1.0)


def test_split_names_and_merges_follow_the_rule():
    mobile = names("torchvision:mobilenet_v3_small")
    assert mobile[0] == "features.0-4" and mobile[-1] == "classifier"  # tiny first stages merged, head kept
    vit = names(TINY_VIT)
    assert vit[0] == "class_token" and vit[1] == "conv_proj" and vit[-1] == "heads"  # stem and head stay apart
    assert any(n.startswith("encoder.layers.encoder_layer_") for n in vit)


def test_a_models_own_layer_groups_win_and_leftovers_form_other():
    assert names(f"{FACTORIES}:two_part") == ["front", "head", "other"]


def test_built_in_models_keep_their_groups():
    assert names("small_cnn") == ["conv1", "bn1", "block1", "block2", "block3", "fc"]
    assert names("airnet") == ["whiten", "block1", "block2", "block3", "head"]


# ------------------------------------------------------------------ specs and their errors
@pytest.mark.parametrize("text, fragment", [
    ("vgg", "Unknown model: 'vgg'"),
    ("torchvision:no_such_net", "Unknown torchvision model 'no_such_net'"),
    ("torchvision:resnet18?pretrained=1", "expected ?weights=DEFAULT"),
    ("file.py:", "Invalid model spec"),
])
def test_bad_specs_say_what_was_expected(text, fragment):
    with pytest.raises(ValueError, match=fragment.replace("?", r"\?").replace("(", r"\(")):
        ModelConfig(text)


def test_width_belongs_to_built_in_models_only():
    with pytest.raises(ValueError, match="only with a built-in model"):
        ModelConfig("torchvision:resnet18", width=8)
    # a preset's widths are its own model's: another model drops them
    cfg = resolve_config("sgd-beta", model="torchvision:resnet18")
    assert cfg.model.width is None and cfg.model.name == "torchvision:resnet18"


def test_factory_path_is_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(FACTORIES.parent)
    assert resolve_config("sgd-beta", model="user_models.py:tiny_vit").model.name == f"{FACTORIES}:tiny_vit"


@pytest.mark.parametrize("factory, fragment", [
    ("broken", "could not be built: RuntimeError: this factory always fails"),
    ("not_a_module", "returned str"),
    ("missing_fn", "could not be imported: AttributeError"),
])
def test_a_factory_that_fails_is_one_line_naming_it(factory, fragment):
    zoo.trust(f"{FACTORIES}:{factory}")
    with pytest.raises(zoo.ModelSpecError, match=fragment) as e:
        check_model(ModelConfig(f"{FACTORIES}:{factory}"))
    assert str(FACTORIES) in str(e.value) and "\n" not in str(e.value)


def test_a_model_that_needs_bigger_inputs_says_resize(tmp_path):
    with pytest.raises(zoo.ModelSpecError, match=r"does not run on 32x32 images .*--resize") as e:
        check_model(ModelConfig(f"{FACTORIES}:needs_64"))
    assert "\n" not in str(e.value)
    check_model(ModelConfig(f"{FACTORIES}:needs_64", resize=64))  # upsampled on the device: runs
    model = build_model(ModelConfig(f"{FACTORIES}:needs_64", resize=64))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert "resize" not in str(list(model.state_dict()))  # a hook, not a wrapper: keys stay the model's


def test_cli_refuses_a_broken_factory_before_any_run_exists(tmp_path, capsys):
    code = main(["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "train",
                 "--dataset", "synthetic", "--model", f"{FACTORIES}:broken", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "this factory always fails" in err and len(err.splitlines()) == 1
    assert Store(tmp_path / "runs").runs() == []


def test_pretrained_weights_without_network_are_one_line_and_no_run(tmp_path, monkeypatch, capsys):
    """Only our line: torch.hub's own "Downloading: ..." (printed on stdout before it fails) is hidden."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*a, **kw):
        raise urllib.error.URLError("Name or service not known")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # the download fails; hub's print runs
    code = main(["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "train",
                 "--dataset", "synthetic", "--model", "torchvision:resnet18?weights=DEFAULT", "--quiet"])
    out, err = capsys.readouterr()
    err = err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and out == "" and "Downloading" not in err
    assert "not in torch's cache" in err and "pre-fetch them" in err and "resnet18-f37072fd.pth" in err
    assert Store(tmp_path / "runs").runs() == []


def test_pretrained_weights_from_the_cache_get_a_new_head(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    import torchvision
    ref = torchvision.models.resnet18()  # stands in for the ImageNet weights (1000 classes)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(ref.state_dict(), folder / "resnet18-f37072fd.pth")
    model = build_model(ModelConfig("torchvision:resnet18?weights=DEFAULT", num_classes=7))
    assert model.fc.out_features == 7
    assert torch.equal(model.conv1.weight, ref.conv1.weight) and torch.equal(model.layer4[1].conv2.weight,
                                                                              ref.layer4[1].conv2.weight)


def test_timm_without_timm_installed_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(zoo.ModelSpecError, match=r"needs timm.*pip install 'beta-core\[timm\]'"):
        build_model(ModelConfig("timm:resnet18"))


def test_timm_model_builds_with_the_datasets_classes():
    pytest.importorskip("timm", reason="timm is an optional extra")
    model = build_model(ModelConfig("timm:resnet10t", num_classes=5))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    assert 4 <= len(layer_groups(model)) <= 12


def test_beta_models_is_validated_at_start():
    assert settings({"BETA_MODELS": f"{FACTORIES}:tiny_vit, torchvision:resnet18"}).models == (
        f"{FACTORIES}:tiny_vit", "torchvision:resnet18")
    with pytest.raises(EnvError, match="BETA_MODELS.*'not a spec' is none of these"):
        settings({"BETA_MODELS": "torchvision:resnet18,not a spec"})


@pytest.mark.slow  # 15 s: builds every listed model; the group tests above cover the catalogue by default
def test_models_cli_lists_and_shows(tmp_path, capsys):
    base = ["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "models"]
    assert main([*base, "show", "torchvision:resnet18"]) == 0
    out = capsys.readouterr().out
    assert "7 layer groups" in out and "layer4" in out and "75.1%" in out
    assert main(base) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "yes" in rows["torchvision:resnet18"] and "no: --resize" in rows["torchvision:vit_b_16"]
    assert "yes" in rows["small_cnn"]


# ------------------------------------------------------------------ the whole pipeline on outside models
def _tiny(model: str, **kw):
    base = dict(dataset="synthetic", synthetic_train=120, synthetic_test=60, epochs=2, batch_size=40, device="cpu",
                lr=0.05, val_fraction=0.0)
    return resolve_config("sgd-beta", model=model, **{**base, **kw})


# efficientnet_b0 (~47 s) and resnet18 (~31 s) on 2 cores: under -m slow, so the default suite stays
# near 10 minutes; mobilenet_v3_small keeps a torchvision model in it
@pytest.mark.parametrize("spec", [pytest.param("torchvision:resnet18", marks=pytest.mark.slow),
                                  "torchvision:mobilenet_v3_small",
                                  pytest.param("torchvision:efficientnet_b0", marks=pytest.mark.slow), TINY_VIT])
def test_train_attribute_surgery_curvature_on(spec, tmp_path):
    store, data = Store(tmp_path / "runs"), str(tmp_path / "data")
    cfg = _tiny(spec)
    check_data([cfg], data)
    rid = store.create_run(cfg.to_dict())
    run = execute_run(store, rid, data)
    assert run["status"] == "done", run["error"]
    groups = [g for g, _ in run_groups(run)]
    assert groups == names(spec) and len(groups) >= 4
    # attribution over the recorded groups (through the checkpoint, rebuilt from the stored config)
    result = attribute_run(store, rid, AttributionConfig(probe_steps=2, max_samples=40), data)
    assert result["groups"] == groups
    # surgery on two groups: only they train (with the random-groups and per-parameter controls once)
    scfg = SurgeryConfig(groups=tuple(groups[-2:]), epochs=1, controls=spec == TINY_VIT)
    sid = store.create_run(surgery_run_config(train_config_of(run), scfg), kind="surgery", parent=rid)
    surgery = execute_run(store, sid, data)
    assert surgery["status"] == "done", surgery["error"]
    assert surgery["summary"]["groups"] == groups[-2:] and 0 < surgery["summary"]["param_fraction"] < 1
    # curvature per group on the reloaded model
    model, splits, loaders = load_trained(store, rid, data)
    xb, yb = next(loaders["train_eval"].epoch(0))
    eig = group_eigenvalues(model, loss_fn(), [(xb[:32], yb[:32])], max_hvps=60, tol=0.1)
    assert list(eig) == groups and all(v[0] == v[0] for v in eig.values())


def test_planted_faults_on_a_batchnorm_free_model():
    model = build_model(ModelConfig(TINY_VIT), pretrained=False)
    assert not any(fault_applies(model, g, "bn_stats") for g in group_modules(model))  # no BatchNorm: skipped
    before = {n: p.clone() for n, p in model.named_parameters()}
    apply_fault(model, "class_token", "reinit", 1.0)  # a group of parameters the model holds itself
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed == ["class_token"]


def test_a_run_whose_factory_is_gone_says_so_in_one_line(tmp_path):
    src = tmp_path / "mine.py"
    src.write_text(FACTORIES.read_text())
    zoo.trust(f"{src}:two_part")
    store, data = Store(tmp_path / "runs"), str(tmp_path / "data")
    rid = store.create_run(_tiny(f"{src}:two_part", epochs=1).to_dict())
    assert execute_run(store, rid, data)["status"] == "done"
    src.unlink()
    from beta_core import zoo as z
    z._FILE_MODULES.clear()  # a new process would not have it imported
    with pytest.raises((StoreError, ValueError), match=r"mine.py:two_part' could not be imported") as e:
        load_trained(store, rid, data)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------ trust follows origin (issue 29)
@pytest.mark.parametrize("spec", ["os:system", "subprocess:getoutput", "sys:exit", "builtins:input",
                                  "importlib:import_module", "os.path:join"])
def test_standard_library_callables_are_refused_before_import(tmp_path, capsys, spec):
    code = main(["--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data"), "train",
                 "--dataset", "synthetic", "--model", spec, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "names the standard library's" in err, err
    assert Store(tmp_path / "runs").runs() == []


@pytest.mark.parametrize("spec, fragment", [
    ("beta_core.models:MODELS", "MODELS is a tuple (expected a Python function or nn.Module class"),
    ("beta_core.models:ModelConfig", "ModelConfig is a type (expected a Python function or nn.Module class"),
])
def test_a_module_spec_must_name_a_factory(spec, fragment):
    zoo.trust(spec)
    with pytest.raises(zoo.ModelSpecError) as e:
        build_model(ModelConfig(spec))
    assert "\n" not in str(e.value) and fragment in str(e.value)


def test_a_factory_that_calls_sys_exit_is_an_error_not_an_exit(tmp_path):
    src = tmp_path / "quits.py"
    src.write_text("import sys\ndef net(num_classes):\n    sys.exit(10)\n")
    zoo.trust(f"{src}:net")
    with pytest.raises(zoo.ModelSpecError, match=r"could not be built: SystemExit: 10"):
        build_model(ModelConfig(f"{src}:net"))


def test_untrusted_code_is_not_imported_and_trust_is_per_spec(tmp_path):
    marker, src = tmp_path / "ran", tmp_path / "side.py"
    src.write_text(f"open({str(marker)!r}, 'w').close()\nimport torch\ndef net(num_classes):\n"
                   "    return torch.nn.Linear(2, num_classes)\n")
    zoo.trust(f"{src}:other")  # another factory of the same file is not this one
    with pytest.raises(zoo.ModelSpecError, match="never imported, until you trust it"):
        build_model(ModelConfig(f"{src}:net"))
    assert not marker.exists() and not zoo.is_trusted(f"{src}:net") and zoo.is_trusted("torchvision:resnet18")
    zoo.trust(f"{src}:net")
    assert isinstance(build_model(ModelConfig(f"{src}:net")), torch.nn.Module) and marker.exists()


def test_beta_models_is_trusted_and_handed_to_workers(tmp_path, monkeypatch):
    src = tmp_path / "mine.py"
    src.write_text(FACTORIES.read_text())
    zoo.untrust_all()
    monkeypatch.setenv("BETA_MODELS", f"{src}:two_part")
    assert zoo.is_trusted(f"{src}:two_part") and f"{src}:two_part" in zoo.trusted()
    from helpers import tiny_config

    from beta_core.jobs.manager import JobManager
    jm = JobManager(tmp_path / "runs", str(tmp_path / "data"))
    rid = jm.submit(tiny_config(model=f"{src}:two_part", width=None).to_dict())
    assert jm.wait([rid], timeout=120)[0]["status"] == "done"
    jm.close()

