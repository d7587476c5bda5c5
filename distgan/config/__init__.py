"""distgan.config: typed sections (sections.py) and loading with overrides (loading.py).

A config is built from YAML + overrides, completed (launcher settings, --debug limits) through
`override`, validated, and frozen; nothing writes to it afterwards.
"""

from distgan.config.loading import config_from_dict, load_config, override
from distgan.config.sections import (
    AUGMENT_DEFAULT_OPS,
    AUGMENT_OPS,
    AUGMENT_PIPES,
    EVAL_EXTRACTORS,
    AdamConfig,
    AugmentConfig,
    CheckpointConfig,
    ConfigError,
    DataConfig,
    DistributedConfig,
    EvalConfig,
    ExperimentConfig,
    LogConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    TrainConfig,
    WandbConfig,
)

__all__ = [
    "AUGMENT_DEFAULT_OPS",
    "AUGMENT_OPS",
    "AUGMENT_PIPES",
    "EVAL_EXTRACTORS",
    "AdamConfig",
    "AugmentConfig",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "DistributedConfig",
    "EvalConfig",
    "ExperimentConfig",
    "LogConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "OptimConfig",
    "TrainConfig",
    "WandbConfig",
    "config_from_dict",
    "load_config",
    "override",
]
