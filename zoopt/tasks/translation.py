"""A synthetic translation task: a small grammar translated into a made-up target language.

No parallel corpus can be shipped or downloaded with zoopt, so this module *generates* one,
deterministically from a seed. The data is synthetic and says nothing about natural
languages; it exists so that BLEU optimisation (Papineni et al., 2002) can be run and tested
end to end on a laptop. It is built to be learnable yet not trivial:

* **Lexicon.** English-like source words map to generated pseudo-words. Some map one-to-many:
  ~30% of nouns become two-word compounds and ~30% of verbs a particle + verb pair.
* **Reordering.** Source clauses are SVO (``the old cat sees a dog in the garden today``);
  target clauses are [adverb] S [postpositional phrase] O [negation] V (verb-final, SOV).
  Adjectives follow the noun in the target and their order is mirrored.
* **Agreement.** Every target noun has a lexical gender. Articles inflect for gender and
  number, adjectives take a gender/number suffix from their noun, and the verb takes a suffix
  for the tense and the gender/number of its *subject* (``kelum-et`` / ``kelum-anu``).
* **Morphology on the source side** too: plural nouns (``mice``), 3rd-person ``-s``, irregular
  past tenses, and do-support for negation (``does not see`` / ``did not see``).
* **Optional material.** Adjectives (0–2 per noun phrase), a prepositional phrase, an
  adverb, negation, past tense, and a second clause joined by ``and``/``but``/``because``.

The target lexicon (pseudo-word spellings, genders, which words are compounds) is drawn from
``language_seed``; the sentences from ``seed``. Source sentences are unique across the train,
valid and test splits, so held-out BLEU measures generalisation.

Example::

    task = make_translation_task(2000, seed=0)
    src, tgt = task.encode("train")          # (N, S), (N, T) padded LongTensors
    task.tgt_vocab.decode(tgt[:2])           # back to the target strings
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from zoopt.metrics import corpus_bleu, sentence_bleu_batch
from zoopt.tasks.sequence_task import BOS, EOS, PAD, UNK, SequenceTask, Vocabulary

__all__ = [
    "Vocabulary",
    "NounPhrase",
    "Clause",
    "Sentence",
    "TranslationGrammar",
    "TranslationTask",
    "make_translation_task",
    "PAD",
    "BOS",
    "EOS",
    "UNK",
]


# -- the source side: English-like words with their inflections --------------------------
_NOUNS = [  # (singular, plural)
    ("cat", "cats"),
    ("dog", "dogs"),
    ("bird", "birds"),
    ("horse", "horses"),
    ("child", "children"),
    ("woman", "women"),
    ("man", "men"),
    ("teacher", "teachers"),
    ("farmer", "farmers"),
    ("king", "kings"),
    ("queen", "queens"),
    ("doctor", "doctors"),
    ("student", "students"),
    ("friend", "friends"),
    ("mouse", "mice"),
    ("river", "rivers"),
    ("house", "houses"),
    ("tree", "trees"),
    ("book", "books"),
    ("letter", "letters"),
    ("apple", "apples"),
    ("song", "songs"),
    ("garden", "gardens"),
    ("city", "cities"),
    ("boat", "boats"),
    ("bridge", "bridges"),
    ("window", "windows"),
    ("stone", "stones"),
    ("flower", "flowers"),
    ("village", "villages"),
    ("soldier", "soldiers"),
    ("baker", "bakers"),
]
_ADJECTIVES = [
    "big",
    "small",
    "red",
    "old",
    "young",
    "happy",
    "tired",
    "green",
    "quiet",
    "clever",
    "brave",
    "dark",
    "bright",
    "strange",
    "lazy",
    "heavy",
]
_VERBS = [  # (base, 3rd person singular, past)
    ("see", "sees", "saw"),
    ("like", "likes", "liked"),
    ("find", "finds", "found"),
    ("eat", "eats", "ate"),
    ("read", "reads", "read"),
    ("write", "writes", "wrote"),
    ("help", "helps", "helped"),
    ("follow", "follows", "followed"),
    ("carry", "carries", "carried"),
    ("build", "builds", "built"),
    ("watch", "watches", "watched"),
    ("call", "calls", "called"),
    ("paint", "paints", "painted"),
    ("visit", "visits", "visited"),
    ("keep", "keeps", "kept"),
    ("open", "opens", "opened"),
    ("take", "takes", "took"),
    ("bring", "brings", "brought"),
    ("draw", "draws", "drew"),
    ("hear", "hears", "heard"),
]
_PREPOSITIONS = ["in", "near", "behind", "under", "with"]
_ADVERBS = ["quickly", "slowly", "often", "today", "again", "yesterday", "quietly"]
_CONJUNCTIONS = ["and", "but", "because"]

# -- the target side's closed classes (fixed); open classes are generated ----------------
#: articles by (determiner, gender, plural)
_ARTICLES = {
    ("the", "m", False): "lo",
    ("the", "f", False): "la",
    ("the", "m", True): "los",
    ("the", "f", True): "las",
    ("a", "m", False): "un",
    ("a", "f", False): "una",
    ("some", "m", True): "kel",
    ("some", "f", True): "kela",
}
_NOUN_PLURAL = {"m": "i", "f": "e"}
_ADJ_SUFFIX = {("m", False): "o", ("f", False): "a", ("m", True): "os", ("f", True): "as"}
#: verb suffix by (tense, subject gender, subject plural)
_VERB_SUFFIX = {
    ("present", "m", False): "et",
    ("present", "f", False): "at",
    ("present", "m", True): "en",
    ("present", "f", True): "an",
    ("past", "m", False): "ix",
    ("past", "f", False): "ax",
    ("past", "m", True): "inu",
    ("past", "f", True): "anu",
}
_NEGATION = "na"
_TGT_CONJUNCTIONS = {"and": "e", "but": "ma", "because": "kar"}
_ONSETS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_CODAS = "lmnrst"


# -- sentence structure -------------------------------------------------------------------
@dataclass(frozen=True)
class NounPhrase:
    """A determiner, 0–2 adjectives (source order) and a noun (singular lemma)."""

    det: str
    noun: str
    plural: bool
    adjectives: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clause:
    """Subject–verb–object clause with optional negation, PP and adverb."""

    subject: NounPhrase
    verb: str
    obj: NounPhrase
    tense: str = "present"
    negated: bool = False
    pp: tuple[str, NounPhrase] | None = None
    adverb: str | None = None


@dataclass(frozen=True)
class Sentence:
    """One or more clauses joined by conjunctions (``len(conjunctions) == len(clauses) - 1``)."""

    clauses: tuple[Clause, ...]
    conjunctions: tuple[str, ...] = ()


class TranslationGrammar:
    """The synthetic language pair: lexicon, sampling of sentences, and both renderings.

    Args:
        language_seed: draws the target lexicon (pseudo-word spellings, noun genders, which
            nouns are compounds and which verbs take a particle).
        compound_fraction: fraction of nouns and verbs whose translation is two words.
    """

    def __init__(self, language_seed: int = 0, compound_fraction: float = 0.3):
        if not 0.0 <= compound_fraction <= 1.0:
            raise ValueError(f"compound_fraction must be in [0, 1], got {compound_fraction!r}")
        rng = random.Random(f"zoopt-translation-language-{language_seed}")
        used: set[str] = set()

        def word() -> str:
            # CV-CVC stems never collide with the ≤ 4-letter closed-class words, and
            # appending a suffix never turns one stem into another (all stems have 5 letters)
            while True:
                w = (
                    rng.choice(_ONSETS)
                    + rng.choice(_VOWELS)
                    + rng.choice(_ONSETS)
                    + rng.choice(_VOWELS)
                    + rng.choice(_CODAS)
                )
                if w not in used:
                    used.add(w)
                    return w

        self.plural_of = dict(_NOUNS)
        self.verb_forms = {v[0]: v for v in _VERBS}
        self.gender: dict[str, str] = {}
        self.noun_target: dict[str, tuple[str, ...]] = {}
        for sg, _ in _NOUNS:
            self.gender[sg] = rng.choice("mf")
            two = rng.random() < compound_fraction
            self.noun_target[sg] = (word(), word()) if two else (word(),)
        self.adj_target = {a: word() for a in _ADJECTIVES}
        self.verb_target: dict[str, tuple[str, ...]] = {}
        for base, _, _ in _VERBS:
            two = rng.random() < compound_fraction
            self.verb_target[base] = (word(), word()) if two else (word(),)
        self.adv_target = {a: word() for a in _ADVERBS}
        self.prep_target = {p: word() for p in _PREPOSITIONS}

    # -- sampling --------------------------------------------------------------------------
    def sample_noun_phrase(self, rng: random.Random) -> NounPhrase:
        """A random noun phrase: 40% plural, 0/1/2 adjectives with p = .5/.35/.15."""
        noun = rng.choice(_NOUNS)[0]
        plural = rng.random() < 0.4
        det = rng.choice(["the", "some"] if plural else ["the", "a"])
        u = rng.random()
        n_adj = 0 if u < 0.5 else (1 if u < 0.85 else 2)
        return NounPhrase(det, noun, plural, tuple(rng.sample(_ADJECTIVES, n_adj)))

    def sample_clause(self, rng: random.Random) -> Clause:
        """A random clause: 40% past, 20% negated, 30% with a PP, 25% with an adverb."""
        subject = self.sample_noun_phrase(rng)
        verb = rng.choice(_VERBS)[0]
        obj = self.sample_noun_phrase(rng)
        tense = "past" if rng.random() < 0.4 else "present"
        negated = rng.random() < 0.2
        pp = (
            (rng.choice(_PREPOSITIONS), self.sample_noun_phrase(rng))
            if rng.random() < 0.3
            else None
        )
        adverb = rng.choice(_ADVERBS) if rng.random() < 0.25 else None
        return Clause(subject, verb, obj, tense, negated, pp, adverb)

    def sample_sentence(self, rng: random.Random, max_clauses: int = 2) -> Sentence:
        """A sentence of 1..``max_clauses`` clauses; each extra clause is added with p = .35."""
        clauses = [self.sample_clause(rng)]
        while len(clauses) < max_clauses and rng.random() < 0.35:
            clauses.append(self.sample_clause(rng))
        conj = tuple(rng.choice(_CONJUNCTIONS) for _ in clauses[1:])
        return Sentence(tuple(clauses), conj)

    # -- rendering -------------------------------------------------------------------------
    def source_noun_phrase(self, np_: NounPhrase) -> list[str]:
        """``det adj* noun`` with the English plural."""
        noun = self.plural_of[np_.noun] if np_.plural else np_.noun
        return [np_.det, *np_.adjectives, noun]

    def target_noun_phrase(self, np_: NounPhrase) -> list[str]:
        """``article noun adj*``: article and adjectives agree with the noun's gender/number;
        adjectives follow the noun in mirrored order; the plural marks the compound's head."""
        g = self.gender[np_.noun]
        words = list(self.noun_target[np_.noun])
        if np_.plural:
            words[-1] += _NOUN_PLURAL[g]
        adjs = [self.adj_target[a] + _ADJ_SUFFIX[(g, np_.plural)] for a in reversed(np_.adjectives)]
        return [_ARTICLES[(np_.det, g, np_.plural)], *words, *adjs]

    def source_clause(self, c: Clause) -> list[str]:
        """``S V O [prep NP] [adverb]`` with English agreement and do-support negation."""
        base, third, past = self.verb_forms[c.verb]
        if c.negated:
            aux = "did" if c.tense == "past" else ("do" if c.subject.plural else "does")
            verb = [aux, "not", base]
        elif c.tense == "past":
            verb = [past]
        else:
            verb = [base if c.subject.plural else third]
        out = self.source_noun_phrase(c.subject) + verb + self.source_noun_phrase(c.obj)
        if c.pp is not None:
            out += [c.pp[0], *self.source_noun_phrase(c.pp[1])]
        if c.adverb is not None:
            out.append(c.adverb)
        return out

    def target_clause(self, c: Clause) -> list[str]:
        """``[adverb] S [NP postposition] O [na] V-suffix``: verb-final; the verb's suffix
        agrees with the subject's gender and number and marks the tense."""
        out = [self.adv_target[c.adverb]] if c.adverb is not None else []
        out += self.target_noun_phrase(c.subject)
        if c.pp is not None:
            out += [*self.target_noun_phrase(c.pp[1]), self.prep_target[c.pp[0]]]
        out += self.target_noun_phrase(c.obj)
        if c.negated:
            out.append(_NEGATION)
        verb = list(self.verb_target[c.verb])
        g = self.gender[c.subject.noun]
        verb[-1] += _VERB_SUFFIX[(c.tense, g, c.subject.plural)]
        return out + verb

    def render(self, s: Sentence) -> tuple[str, str]:
        """The (source, target) strings of a sentence (words separated by single spaces)."""
        src = self.source_clause(s.clauses[0])
        tgt = self.target_clause(s.clauses[0])
        for conj, c in zip(s.conjunctions, s.clauses[1:], strict=True):
            src += [conj, *self.source_clause(c)]
            tgt += [_TGT_CONJUNCTIONS[conj], *self.target_clause(c)]
        return " ".join(src), " ".join(tgt)

    # -- vocabularies ------------------------------------------------------------------------
    def source_words(self) -> list[str]:
        """Every word the source side can produce, in a fixed order."""
        words = [w for pair in _NOUNS for w in pair] + list(_ADJECTIVES)
        words += [w for forms in _VERBS for w in forms] + ["do", "does", "did", "not"]
        words += ["the", "a", "some"] + _PREPOSITIONS + _ADVERBS + _CONJUNCTIONS
        return list(dict.fromkeys(words))

    def target_words(self) -> list[str]:
        """Every word the target side can produce, in a fixed order."""
        words = list(dict.fromkeys(_ARTICLES.values()))
        for sg, _ in _NOUNS:
            *head, last = self.noun_target[sg]
            words += head + [last, last + _NOUN_PLURAL[self.gender[sg]]]
        words += [a + s for a in self.adj_target.values() for s in _ADJ_SUFFIX.values()]
        for base in self.verb_target:
            *head, last = self.verb_target[base]
            words += head + [last + s for s in dict.fromkeys(_VERB_SUFFIX.values())]
        words += list(self.adv_target.values()) + list(self.prep_target.values())
        words += [_NEGATION, *_TGT_CONJUNCTIONS.values()]
        return list(dict.fromkeys(words))


@dataclass
class TranslationTask(SequenceTask):
    """A generated parallel corpus with its vocabularies, scored by BLEU (sacrebleu).

    Attributes:
        train_pairs, valid_pairs, test_pairs: lists of (source, target) strings.
        src_vocab, tgt_vocab: :class:`Vocabulary` of every word the grammar can produce.
        grammar: the :class:`TranslationGrammar` that generated the data.
        sentences: the structured :class:`Sentence` of each pair, per split.
    """

    grammar: TranslationGrammar | None = None
    sentences: dict[str, list[Sentence]] = field(default_factory=dict, repr=False)
    metric_name = "bleu"

    def sentence_scores(
        self, hypotheses: Sequence[str], sources: Sequence[str], references: Sequence[str]
    ) -> list[float]:
        """Sentence BLEU (0–100) of each output against its reference."""
        return sentence_bleu_batch(hypotheses, references)

    def corpus_score(
        self, hypotheses: Sequence[str], sources: Sequence[str], references: Sequence[str]
    ) -> float:
        """Corpus BLEU (0–100)."""
        return corpus_bleu(hypotheses, references)


def make_translation_task(
    size: int = 2000,
    seed: int = 0,
    *,
    valid_size: int | None = None,
    test_size: int | None = None,
    max_clauses: int = 2,
    language_seed: int = 0,
) -> TranslationTask:
    """Generate the synthetic translation task (see the module docstring for the grammar).

    Args:
        size: number of training pairs, ≥ 1.
        seed: draws the sentences; the same arguments give identical data.
        valid_size, test_size: held-out pairs (default ``max(50, size // 10)`` each, at most
            1000).
        max_clauses: at most this many clauses per sentence, ≥ 1.
        language_seed: draws the target lexicon (see :class:`TranslationGrammar`).

    Returns:
        a :class:`TranslationTask`; source sentences are unique across the three splits.
    """
    for name, value, lo in (
        ("size", size, 1),
        ("max_clauses", max_clauses, 1),
        ("valid_size", valid_size, 0),
        ("test_size", test_size, 0),
    ):
        if value is None and name in ("valid_size", "test_size"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
    if valid_size is None:
        valid_size = min(1000, max(50, size // 10))
    if test_size is None:
        test_size = min(1000, max(50, size // 10))
    grammar = TranslationGrammar(language_seed)
    rng = random.Random(f"zoopt-translation-data-{seed}")
    total = size + valid_size + test_size
    seen: set[str] = set()
    pairs: list[tuple[str, str]] = []
    sentences: list[Sentence] = []
    attempts = 0
    while len(pairs) < total:
        attempts += 1
        if attempts > 20 * total + 1000:  # only reachable with tiny grammars; guards a hang
            raise RuntimeError(f"could not draw {total} distinct sentences")
        s = grammar.sample_sentence(rng, max_clauses)
        src, tgt = grammar.render(s)
        if src in seen:
            continue
        seen.add(src)
        pairs.append((src, tgt))
        sentences.append(s)
    a, b = size, size + valid_size
    return TranslationTask(
        train_pairs=pairs[:a],
        valid_pairs=pairs[a:b],
        test_pairs=pairs[b:],
        src_vocab=Vocabulary(grammar.source_words()),
        tgt_vocab=Vocabulary(grammar.target_words()),
        grammar=grammar,
        sentences={"train": sentences[:a], "valid": sentences[a:b], "test": sentences[b:]},
    )
