"""The imaginary listener: RSA math (`rsa`), distractor choice (`distractors`), ranking mode
(`ranking`) and the built-in ranking set (`ranking_set`). METHODS.md section 5."""

from .distractors import DistractorMode, choose_distractors
from .ranking import Ranking, rank_replies, rank_scores, score_requests
from .rsa import (GENERATION_ALPHA, GENERATION_BETA, RANKING_ALPHA, RANKING_BETA, SequenceScore, TokenStep, listener,
                  next_prior, rank, sequence_score, token_step)

__all__ = ["DistractorMode", "GENERATION_ALPHA", "GENERATION_BETA", "RANKING_ALPHA", "RANKING_BETA", "SequenceScore",
           "Ranking", "TokenStep", "choose_distractors", "listener", "next_prior", "rank", "rank_replies", "rank_scores",
           "score_requests", "sequence_score", "token_step"]
