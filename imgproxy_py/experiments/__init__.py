"""Online experiments: A/B arms chosen by a stable hash of the source URL (see README, Experiments)."""

from imgproxy_py.experiments.assign import Experiments, bucket
from imgproxy_py.experiments.config import Arm, Experiment, ExperimentsFile, load_experiments

__all__ = ["Arm", "Experiment", "Experiments", "ExperimentsFile", "bucket", "load_experiments"]
