"""Is a prompt English? Decides KIE's `enableTranslation` (pure, local, no network).

KIE translates prompts when asked to, and translating an English prompt only costs time and
can change it, so the flag is sent true only for prompts in another language. The detection is
deliberately small: a prompt is a few words, often with brand names and quoted text in it.

- Text in quotes is left out: it is what the member wants written in the image ("a sign that
  says "Hola""), not the language of the instruction. When everything is quoted, all counts.
- Chinese, Japanese and Korean characters count one each (a character is about a word);
  a word in another non-Latin script (Cyrillic, Greek, Arabic, …) counts one.
- In Latin script, common function words and prompt verbs of English are weighed against
  those of Spanish (and of French, Portuguese, Italian and German), and a word with accents
  (ñ, é, ü, …) counts for the other side.

Not English when the other side outweighs the English words; ties and prompts with no clue
("cyberpunk cat") are English, KIE's default language.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

_QUOTED: Final = re.compile(r'"[^"]*"|“[^”]*”|„[^“”]*[“”]|«[^»]*»|「[^」]*」|『[^』]*』')
_WORD: Final = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_CJK: Final = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\uff66-\uff9f]"
)


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_ENGLISH: Final = _word_set(
    """the an of and or with without in on at to for from by into onto over under behind
    is are was be it its this that these those he she they them her his their my your our
    make made add remove change turn replace put give keep show wearing holding style like
    as but not all more very only same instead background image photo picture of while
    who what where which has have had just now then so than there here some each other
    up down out off near next front back left right top bottom new old one two three"""
)
# Words shared with English ("a", "no", "me", "son", "he", …) are on neither list.
_OTHER: Final = _word_set(
    """el la los las un una unos unas del al de y o en es son con sin por para que se lo
    le les su sus mi mis tu este esta esto estos estas ese esa como pero muy más mas
    hacia entre sobre hasta desde cuando donde ser estar hay fondo imagen foto estilo
    haz hazlo hazla cambia añade agrega quita pon ponle convierte dale pinta dibuja
    rojo roja azul verde amarillo negro negra blanco blanca gato perro sombrero cielo
    noche mujer hombre niño niña casa ciudad playa montaña flores
    le les des du et ou avec sans pour dans sur est une ce cette mon ton
    der die das und mit ohne ist ein eine zu auf für nicht
    il lo gli della delle con senza per che una sono
    os as um uma com sem para não mais"""
)


def is_english(prompt: str) -> bool:
    """Whether KIE can take `prompt` as it is (see the module's notes)."""
    unquoted = _QUOTED.sub(" ", prompt)
    text = unquoted if any(ch.isalpha() for ch in unquoted) else prompt
    english = other = 0
    for word in _WORD.findall(text):
        cjk = len(_CJK.findall(word))
        if cjk:
            other += cjk
        elif not _is_latin(word):
            other += 1
        elif word.lower() in _ENGLISH:
            english += 1
        elif word.lower() in _OTHER or not word.isascii():
            other += 1
    return other <= english


def needs_translation(prompt: str) -> bool:
    """KIE's enableTranslation for `prompt`: true when it is not English."""
    return not is_english(prompt)


def _is_latin(word: str) -> bool:
    return all(unicodedata.name(ch, "").startswith("LATIN") for ch in word if ch.isalpha())
