"""Character consistency over a dialogue: the metrics of the consistency study (issue 9).

`metrics` holds the pure scoring functions (prompt-to-line, line-to-line, Q&A, parroting and
the joint score); the study that simulates and judges dialogues builds on them.
"""

from .metrics import (LineToLine, Parroting, copy_scores, joint_scores, line_to_line, parroting, qa_score,
                      rouge_l, share_consistent)

__all__ = ["LineToLine", "Parroting", "copy_scores", "joint_scores", "line_to_line", "parroting", "qa_score",
           "rouge_l", "share_consistent"]
