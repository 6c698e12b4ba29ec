"""The world-simulation benchmark: a fixed suite of physics-world cases, an analyzer that finds the world's
objects in any video by colour, metrics against the simulation, bounds, and an HTML report."""

from kinema.evaluation.analyzer import Analysis, Track, analyze
from kinema.evaluation.runner import (
    BOUND_GENERATORS,
    PreparedCase,
    evaluate,
    noise_generator,
    perturbed_generator,
    pipeline_generator,
    prepare,
    still_generator,
    truth_generator,
)
from kinema.evaluation.scoring import ACCURACY_METRICS, DIAGNOSTICS, score_case
from kinema.evaluation.suite import SUITE_VERSION, TASKS, Case, build_suite

__all__ = [
    "ACCURACY_METRICS", "BOUND_GENERATORS", "DIAGNOSTICS", "SUITE_VERSION", "TASKS", "Analysis", "Case",
    "PreparedCase", "Track", "analyze", "build_suite", "evaluate", "noise_generator", "perturbed_generator",
    "pipeline_generator", "prepare", "score_case", "still_generator", "truth_generator",
]
