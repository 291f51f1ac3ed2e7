"""Features: per-client windows on event time and the pure functions computed over them."""

from detector.features.catalog import FEATURE_NAMES, FEATURES, SPECS, FeatureSpec
from detector.features.stream import FeatureFrame, FeatureStream
from detector.features.view import ClientEvents

__all__ = ["FEATURE_NAMES", "FEATURES", "SPECS", "ClientEvents", "FeatureFrame", "FeatureSpec", "FeatureStream"]
