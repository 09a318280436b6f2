"""Reading ease of patient-facing text.

English: the Flesch-Kincaid grade level (Kincaid JP, Fishburne RP, Rogers RL, Chissom BS.
Derivation of new readability formulas for Navy enlisted personnel. Research Branch Report
8-75, Naval Technical Training Command, 1975):
    grade = 0.39 * (words / sentences) + 11.8 * (syllables / words) - 15.59
Spanish: the Fernandez-Huerta reading ease (Fernandez Huerta J. Medidas sencillas de
lecturabilidad. Consigna 1959;214:29-32), in the corrected form
    ease = 206.84 - 0.60 * (syllables per 100 words) - 1.02 * (sentences per 100 words)
where 60-70 is "normal" and higher is easier.

Syllables are counted by rule (vowel groups, with the usual English silent-e adjustments), as
readability tools do; the figures are estimates for keeping text plain, not exact counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-zÀ-ÿ]+(?:['’][A-Za-z]+)?")
_SENTENCE_END = re.compile(r"[.!?;:]+(?:\s|$)|\n+")
_EN_VOWELS = re.compile(r"[aeiouy]+")
_ES_VOWEL_GROUP = re.compile(r"[aeiouáéíóúü]+")
_ES_STRONG = set("aeoáéíóú")


@dataclass(frozen=True)
class Reading:
    words: int
    sentences: int
    syllables: int
    score: float  # English: a grade level (lower is plainer); Spanish: reading ease (higher)


def _sentences(text: str) -> int:
    parts = [p for p in _SENTENCE_END.split(text) if _WORD.search(p)]
    return max(1, len(parts))


def english_syllables(word: str) -> int:
    w = word.lower().replace("’", "'").split("'")[0]
    if len(w) <= 3:
        return 1
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")):
        w = w[:-1]
    elif w.endswith(("es", "ed")) and not w.endswith(("ted", "ded", "ses", "ces", "zes", "ges")):
        w = w[:-2]
    return max(1, len(_EN_VOWELS.findall(w)))


def spanish_syllables(word: str) -> int:
    count = 0
    for group in _ES_VOWEL_GROUP.findall(word.lower()):
        # Two strong vowels side by side are two syllables (hiatus); a weak vowel (i, u)
        # next to another vowel forms a diphthong, unless it carries an accent (í, ú).
        count += 1
        for a, b in zip(group, group[1:], strict=False):
            if (a in _ES_STRONG and b in _ES_STRONG) or a in "íú" or b in "íú":
                count += 1
    return max(1, count)


def english(text: str) -> Reading:
    words = _WORD.findall(text)
    if not words:
        return Reading(0, 0, 0, 0.0)
    sentences = _sentences(text)
    syllables = sum(english_syllables(w) for w in words)
    grade = 0.39 * (len(words) / sentences) + 11.8 * (syllables / len(words)) - 15.59
    return Reading(len(words), sentences, syllables, round(grade, 1))


def spanish(text: str) -> Reading:
    words = _WORD.findall(text)
    if not words:
        return Reading(0, 0, 0, 100.0)
    sentences = _sentences(text)
    syllables = sum(spanish_syllables(w) for w in words)
    per100_syll = syllables * 100 / len(words)
    per100_sent = sentences * 100 / len(words)
    ease = 206.84 - 0.60 * per100_syll - 1.02 * per100_sent
    return Reading(len(words), sentences, syllables, round(ease, 1))
