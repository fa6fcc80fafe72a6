"""Ready-made tasks shipped with zoopt: generated data and the small models that learn it."""

from zoopt.tasks.countdown import CountdownTask, make_countdown_task
from zoopt.tasks.seq2seq import Seq2Seq
from zoopt.tasks.sequence import SequenceModel
from zoopt.tasks.sequence_task import SequenceTask
from zoopt.tasks.transformer import TransformerSeq2Seq
from zoopt.tasks.translation import (
    TranslationGrammar,
    TranslationTask,
    Vocabulary,
    make_translation_task,
)

__all__ = [
    "CountdownTask",
    "make_countdown_task",
    "SequenceTask",
    "Seq2Seq",
    "SequenceModel",
    "TransformerSeq2Seq",
    "TranslationGrammar",
    "TranslationTask",
    "Vocabulary",
    "make_translation_task",
]
