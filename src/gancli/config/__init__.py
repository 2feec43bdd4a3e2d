"""A run's configuration: the schema (config.schema), the named recipes (config.presets) and the ways to change one
(config.overrides). Everything is importable from gancli.config."""

from gancli.config.overrides import changed_fields, differences, file_blamed, from_toml, named_in_file, settings, with_overrides
from gancli.config.presets import DATASET_PRESETS, PRESETS, TOY_DATASETS, Preset, default_preset, preset
from gancli.config.schema import (
    NOISES,
    OPTIMIZERS,
    OUTPUTS,
    SEEDS,
    TRANSFORMS,
    UPDATES,
    AugmentConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    OptimizerConfig,
    PenaltyConfig,
    RunConfig,
    SslMlpConfig,
    augment_transforms,
    sections,
)

__all__ = [
    "DATASET_PRESETS", "NOISES", "OPTIMIZERS", "OUTPUTS", "PRESETS", "SEEDS", "TOY_DATASETS", "TRANSFORMS", "UPDATES",
    "AugmentConfig", "DiscriminatorConfig", "GeneratorConfig", "OptimizerConfig", "PenaltyConfig", "Preset", "RunConfig",
    "SslMlpConfig", "augment_transforms", "changed_fields", "default_preset", "differences", "file_blamed", "from_toml",
    "named_in_file", "preset",
    "sections", "settings", "with_overrides",
]
