"""The metrics a graded run reports, and which of them a suite may gate on."""

from __future__ import annotations

# name, label, higher is better, gateable
METRICS: list[tuple[str, str, bool, bool]] = [
    ("hit_at_1", "hit@1", True, True),
    ("hit_at_5", "hit@5", True, True),
    ("mrr", "MRR", True, True),
    ("citation_precision", "cite P", True, True),
    ("citation_recall", "cite R", True, True),
    ("citation_validity", "cite valid", True, True),
    ("cited", "cited", True, True),
    ("coverage", "coverage", True, True),
    ("violations", "must-not", False, True),
    ("pasted", "pasted", False, True),
    ("refusal_accuracy", "refusal acc", True, True),
    ("false_refusal", "false ref", False, True),
    ("errors", "errors", False, True),
    ("judge_correctness", "judge corr", True, False),
    ("judge_faithfulness", "judge faith", True, False),
]
METRIC_NAMES = {m[0] for m in METRICS}
HIGHER_IS_BETTER = {m[0]: m[2] for m in METRICS}
GATEABLE = {m[0] for m in METRICS if m[3]}
RETRIEVAL_METRICS = ("hit_at_1", "hit_at_5", "mrr")  # all that --retrieval-only grades


def threshold_metric(key: str) -> tuple[str, bool]:
    """``false_refusal_max`` -> (``false_refusal``, is_max)."""
    if key.endswith("_max"):
        return key[:-4], True
    if key.endswith("_min"):
        return key[:-4], False
    return key, False
