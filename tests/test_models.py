import pytest
import torch

from beta_core.models import ModelConfig, build_model, group_parameters, layer_groups


def test_resnet18_has_paper_groups_and_size():
    model = build_model(ModelConfig("resnet18"))
    groups = layer_groups(model)
    assert [g.name for g in groups] == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]
    total = sum(g.n_params for g in groups)
    assert total == sum(p.numel() for p in model.parameters())
    assert 11.16e6 < total < 11.18e6  # CIFAR ResNet-18: 11.17M
    layer3 = next(g for g in groups if g.name == "layer3")
    assert layer3.fraction == pytest.approx(0.188, abs=0.001)  # PAPER.md: 18.8%
    assert sum(g.fraction for g in groups) == pytest.approx(1.0)


@pytest.mark.parametrize("name,expected", [
    ("small_cnn", ["conv1", "bn1", "block1", "block2", "block3", "fc"]),
    ("small_resnet", ["conv1", "bn1", "layer1", "layer2", "layer3", "fc"]),
])
def test_small_models_forward_and_groups(name, expected):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name, width=8))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert [g.name for g in layer_groups(model)] == expected
    assert all(n.startswith(g) for g, ps in group_parameters(model).items() for n, _ in ps)


def test_same_seed_same_weights():
    torch.manual_seed(3)
    a = build_model(ModelConfig()).state_dict()
    torch.manual_seed(3)
    b = build_model(ModelConfig()).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_input():
    with pytest.raises(ValueError, match="Unknown model: 'vgg'.*expected one of"):
        ModelConfig("vgg")
    with pytest.raises(ValueError, match="Invalid width: 0"):
        ModelConfig(width=0)
    with pytest.raises(ValueError, match="no layer groups"):
        layer_groups(torch.nn.ReLU())


def test_library_is_ui_free():
    """beta_core never imports streamlit, and only the CLI prints."""
    from pathlib import Path

    for f in (Path(__file__).resolve().parents[1] / "beta_core").glob("*.py"):
        text = f.read_text()
        assert "import streamlit" not in text and "from streamlit" not in text, f
        if not f.name.startswith("cli"):
            assert "print(" not in text, f


def test_airnet_shapes_groups_and_parameter_count():
    from beta_core.models import AirNet

    torch.manual_seed(0)
    m = build_model(ModelConfig("airnet"))
    assert isinstance(m, AirNet) and [g.name for g in layer_groups(m)] == ["whiten", "block1", "block2", "block3",
                                                                           "head"]
    # airbench94 at widths 64/256/256: 1,972,792 parameters (whitening filters fixed, BN scales fixed)
    assert sum(p.numel() for p in m.parameters()) == 1_972_792
    assert not m.whiten.weight.requires_grad and not m.block1.norm1.weight.requires_grad
    x = torch.randn(4, 3, 32, 32)
    m.init_from_data(x)
    assert m(x).shape == (4, 10)
    small = build_model(ModelConfig("airnet", widths=(8, 16, 16), num_classes=3))
    assert small(x).shape == (4, 3)
    with pytest.raises(ValueError, match="widths"):
        ModelConfig("airnet", widths=(8, 16))


def test_airnet_whitening_whitens_patches():
    from beta_core.models import AirNet

    torch.manual_seed(0)
    x = torch.randn(64, 3, 32, 32) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1)
    m = AirNet((8, 8, 8))
    m.init_from_data(x)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(x, m.whiten.weight[:12])  # the 12 whitening filters, no bias
    cov = torch.cov(out.permute(1, 0, 2, 3).reshape(12, -1))
    assert torch.allclose(torch.diag(cov), torch.ones(12), atol=0.05)  # unit variance per direction
