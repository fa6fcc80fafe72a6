"""A generated Countdown-style task: reach a target with the given numbers, checked by a verifier.

Each problem gives n numbers and a target, e.g. ``3 7 12 15 = 13``; an answer is an
expression that uses every given number exactly once, joined by the allowed operators
(``+ -`` by default; ``*`` binds tighter), e.g. ``15 - 3 + 12 - 7 + …``. The reward is the
verifier's: 1 when the answer is well formed, uses exactly the given numbers and evaluates to
the target, else 0. It needs no reference answer, so prompts are free: the ``prompts`` split
holds problems whose references are never read by the reward.

Most problems have **several correct answers** (orders and sign patterns). The reference of
each training problem is one of them, drawn uniformly, so maximum likelihood learns a spread
over answers while the reward only asks for one correct answer: the setting in which a
metric-driven method has room over more maximum likelihood (the Countdown task of the
reasoning-RL literature, scaled down).

Tokens: every number (operand or target) is one token, the operators are tokens; the
numbers of a source are sorted so that a problem has one spelling. No ``eval``: answers are
parsed and evaluated here.

Example::

    task = make_countdown_task(5000, seed=0)
    src, tgt = task.encode("train")                     # (N, S), (N, T) padded LongTensors
    task.sentence_scores(["12 - 3 + 4"], ["3 4 12 = 13"], [""])  # [100.0]
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from zoopt.tasks.sequence_task import SequenceTask, Vocabulary

__all__ = [
    "CountdownTask",
    "make_countdown_task",
    "solve_countdown",
    "check_countdown",
    "problem_parts",
]

_OPERATORS = ("+", "-", "*")


def _value(numbers: Sequence[int], ops: Sequence[str]) -> int:
    """The value of ``n0 op0 n1 op1 …`` with ``*`` before ``+``/``-``."""
    terms, signs, current = [], [1], numbers[0]
    for op, n in zip(ops, numbers[1:], strict=True):
        if op == "*":
            current *= n
        else:
            terms.append(current)
            signs.append(1 if op == "+" else -1)
            current = n
    terms.append(current)
    return sum(s * t for s, t in zip(signs, terms, strict=True))


def solve_countdown(numbers: Sequence[int], target: int, operators: str = "+-") -> list[str]:
    """Every distinct answer to a problem, as strings (sorted), by enumeration:
    (n! orders) × (|operators|^(n−1) operator choices)."""
    answers = set()
    for order in set(itertools.permutations(numbers)):
        for ops in itertools.product(operators, repeat=len(numbers) - 1):
            if _value(order, ops) == target:
                answers.add(_spell(order, ops))
    return sorted(answers)


def _spell(numbers: Sequence[int], ops: Sequence[str]) -> str:
    """``"n0 op0 n1 op1 … nk"``."""
    words = [str(numbers[0])]
    for op, n in zip(ops, numbers[1:], strict=True):
        words += [op, str(n)]
    return " ".join(words)


def problem_parts(source: str) -> tuple[list[str], str]:
    """The number words and the target word of a problem ``"n1 … nk = t"``."""
    left, _, right = source.partition(" = ")
    return left.split(), right.strip()


def check_countdown(answer: str, source: str, operators: str = "+-") -> bool:
    """Whether ``answer`` solves the problem ``source`` (``"n1 … nk = t"``): alternating
    numbers and allowed operators, the given numbers each used exactly once, the target
    reached. Malformed answers are wrong, never an error."""
    given, target = problem_parts(source)
    numbers = Counter(given)
    tokens = answer.split()
    if len(tokens) % 2 == 0:
        return False
    used, ops = tokens[0::2], tokens[1::2]
    if Counter(used) != numbers or not set(ops) <= set(operators):
        return False
    try:
        return _value([int(t) for t in used], ops) == int(target)
    except ValueError:
        return False


@dataclass
class CountdownTask(SequenceTask):
    """Generated Countdown problems (see the module docstring).

    Attributes:
        train_pairs, valid_pairs, test_pairs, prompt_pairs: (source, reference answer)
            strings; the reference is one correct answer drawn uniformly from all of them.
        src_vocab, tgt_vocab: :class:`~zoopt.tasks.translation.Vocabulary` of the numbers
            and operators.
        operators: the allowed operators, e.g. ``"+-"``.
    """

    prompt_pairs: list[tuple[str, str]] = field(default_factory=list)
    operators: str = "+-"
    metric_name = "solved"

    def splits(self) -> dict[str, list[tuple[str, str]]]:
        return {**super().splits(), "prompts": self.prompt_pairs}

    def sentence_scores(
        self, hypotheses: Sequence[str], sources: Sequence[str], references: Sequence[str]
    ) -> list[float]:
        """100 for each answer the verifier accepts, else 0 (references are not read)."""
        return [
            100.0 * check_countdown(h, s, self.operators)
            for h, s in zip(hypotheses, sources, strict=True)
        ]

    def corpus_score(
        self, hypotheses: Sequence[str], sources: Sequence[str], references: Sequence[str]
    ) -> float:
        """Percentage of problems solved (0–100)."""
        scores = self.sentence_scores(hypotheses, sources, references)
        return sum(scores) / max(1, len(scores))


def make_countdown_task(
    size: int = 5000,
    seed: int = 0,
    *,
    numbers: int = 4,
    max_number: int = 20,
    operators: str = "+-",
    valid_size: int = 200,
    test_size: int = 300,
    prompt_size: int = 20000,
) -> CountdownTask:
    """Generate Countdown problems: ``numbers`` operands drawn uniformly from 1…``max_number``,
    the target the value of a random answer (random order and operators).

    Args:
        size, valid_size, test_size, prompt_size: problems per split (train ≥ 1); problems
            (sorted numbers and target) are distinct across the four splits.
        seed: draws the problems and the references; the same arguments give identical data.
        numbers: operands per problem, 2–6.
        max_number: largest operand, ≥ 2.
        operators: the allowed operators, a non-empty string over ``"+-*"`` without repeats.

    Returns:
        a :class:`CountdownTask`.
    """
    for name, value, lo in (
        ("size", size, 1),
        ("valid_size", valid_size, 0),
        ("test_size", test_size, 0),
        ("prompt_size", prompt_size, 0),
        ("max_number", max_number, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
    if isinstance(numbers, bool) or not isinstance(numbers, int) or not 2 <= numbers <= 6:
        raise ValueError(f"numbers must be an int in 2..6, got {numbers!r}")
    if (
        not isinstance(operators, str)
        or not operators
        or len(set(operators)) != len(operators)
        or any(op not in _OPERATORS for op in operators)
    ):
        raise ValueError(f"operators must be a non-empty string over '+-*', got {operators!r}")
    rng = random.Random(f"zoopt-countdown-{seed}")
    total = size + valid_size + test_size + prompt_size
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    attempts = 0
    while len(pairs) < total:
        attempts += 1
        if attempts > 20 * total + 1000:
            raise RuntimeError(
                f"could not draw {total} distinct problems with numbers={numbers}, "
                f"max_number={max_number}: ask for fewer or widen the range"
            )
        drawn = [rng.randint(1, max_number) for _ in range(numbers)]
        ops = [rng.choice(operators) for _ in range(numbers - 1)]
        target = _value(drawn, ops)
        source = " ".join(map(str, sorted(drawn))) + f" = {target}"
        if source in seen:
            continue
        seen.add(source)
        pairs.append((source, rng.choice(solve_countdown(drawn, target, operators))))
    values = [t for s, _ in pairs for t in s.split() if t != "="]
    tokens = sorted(set(values), key=int)
    a, b, c = size, size + valid_size, size + valid_size + test_size
    return CountdownTask(
        train_pairs=pairs[:a],
        valid_pairs=pairs[a:b],
        test_pairs=pairs[b:c],
        prompt_pairs=pairs[c:],
        src_vocab=Vocabulary([*tokens, "="]),
        tgt_vocab=Vocabulary([*map(str, range(1, max_number + 1)), *operators]),
        operators=operators,
    )
