"""The Model selector: built-in models, BETA_MODELS factories and torchvision classifiers, with
the chosen model's input size and layer groups (built on the meta device: no weights)."""
import pandas as pd
import streamlit as st
import torch

from beta_core.env import settings
from beta_core.models import MODELS, ModelConfig, build_model, layer_groups, runs_at
from beta_core.zoo import torchvision_names
from pages.views.common import show_error


def model_choices() -> list[str]:
    """What the Model selectors offer: the built-in models, the factories named in BETA_MODELS
    (the app never imports code typed into a page) and torchvision's classifiers."""
    return [*MODELS, *settings().models, *(f"torchvision:{n}" for n in torchvision_names())]


@st.cache_data(max_entries=64, show_spinner=False)
def _model_info(name: str, resize: int | None) -> tuple[list[dict], bool | None]:
    # Built on the meta device: no weights, no memory, milliseconds even for a ViT-B.
    with torch.device("meta"):
        model = build_model(ModelConfig(name, resize=resize), pretrained=False)
    rows = [{"group": g.name, "parameters": f"{g.n_params:,}", "share": f"{100 * g.fraction:.1f}%"}
            for g in layer_groups(model)]
    return rows, runs_at(model, 32)  # the resize hook, if any, upsamples the stored 32x32 images


def model_picker(default: str, key: str, groups: bool = True) -> tuple[str, int | None]:
    """The Model selector with its input size and, with ``groups``, the model's layer groups
    under it (the unit of attribution and surgery). Outside a form, so they follow the choice
    at once; a model that does not run at the chosen size says so either way."""
    choices = model_choices()
    c1, c2 = st.columns([3, 1])
    name = c1.selectbox("Model", choices, index=choices.index(default) if default in choices else 0, key=key,
                        help="built-in, BETA_MODELS factories, torchvision classifiers (README, 'Your model')")
    resize = c2.number_input("Input size (0 = as stored, 32)", min_value=0, max_value=1024, value=0, step=32,
                             key=f"{key}-resize", help="images upsampled on the device, batch by batch (ViT: 224)")
    try:
        rows, runs = _model_info(name, int(resize) or None)
    except (ValueError, RuntimeError, TypeError) as e:
        show_error(e)
        return name, int(resize) or None
    side = int(resize) or 32
    if runs is False:
        st.warning(f"{name} does not run on {side}x{side} images: set the input size (ViT: 224).")
    if groups:
        with st.expander(f"{name}: {len(rows)} layer groups (the unit of attribution and surgery)"):
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", placeholder="—")
    return name, int(resize) or None
