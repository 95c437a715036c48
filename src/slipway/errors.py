"""Errors every layer raises; the CLI maps them to exit codes and one-line messages."""

from __future__ import annotations


class SlipwayError(Exception):
    """Base of every error Slipway raises on purpose; its message names what is wrong."""


class UsageError(SlipwayError):
    """Bad input from the caller: unreadable file, wrong format, missing or invalid config (exit 2)."""


class ConfigError(UsageError):
    """`slipway.yaml` or a setting is missing or invalid; the message names the key."""


class DataFormatError(UsageError):
    """A data batch cannot be read as a table (missing file, unknown format, unparsable content)."""


class ModelContractError(SlipwayError):
    """A model does not honour the model contract (input/output shapes, loadability)."""


class RegistryError(SlipwayError):
    """The model registry refused an operation or is inconsistent."""


class OptimizationError(SlipwayError):
    """Export, parity, quantization or engine building failed; the message names the stage and cause."""

    def __init__(self, stage: str, cause: str) -> None:
        super().__init__(f"{stage}: {cause}")
        self.stage = stage
        self.cause = cause


class ImageError(SlipwayError):
    """Building, pushing or inspecting a container image failed; the message names the step and the tool's output."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"image {step}: {detail}")
        self.step = step
        self.detail = detail


class DeployError(SlipwayError):
    """A deploy target could not reach the requested state; the message names the target, object and cause."""


class MonitorError(SlipwayError):
    """`slipway monitor` cannot judge: no champion, no reference, unreadable logs, an empty or mismatched window (exit 2)."""


class FeatureStoreError(SlipwayError):
    """The feature store cannot answer: a bad repo or service, a missing key column, nothing materialized (exit 2)."""
