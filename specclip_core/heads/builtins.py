"""The core's heads, registered through the component hook (imported when the registry asks for them)."""

from __future__ import annotations

from specclip_core.hookspecs import hookimpl


@hookimpl
def specclip_register_components():
    from specclip_core.components import ComponentList
    from specclip_core.heads.linear import RidgeHead, RidgeHeadConfig
    from specclip_core.heads.mlp import MLPHead, MLPHeadConfig
    from specclip_core.heads.npe import NPEHead, NPEHeadConfig

    components = ComponentList()
    components.register("head", "mlp", MLPHeadConfig, "MLP regressor per label (paper sec. 3.1.1), trained with the core loop")(MLPHead)
    components.register("head", "ridge", RidgeHeadConfig, "ridge regression per label (scikit-learn), penalty chosen on validation")(RidgeHead)
    components.register("head", "npe", NPEHeadConfig, "neural posterior estimation (sbi: MAF or NSF; paper sec. 3.1.2): median and 68% interval")(NPEHead)
    return list(components)
