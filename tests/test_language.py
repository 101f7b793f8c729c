"""enableTranslation's decision: is the prompt English? Local, on prompts in the bot's four
languages, short ones and ones with English brand names or quoted text in them."""

from __future__ import annotations

import pytest

from bot.language import is_english, needs_translation

ENGLISH = [
    "make it night",
    "cyberpunk cat",
    "Add a red hat to the dog",
    "Turn image 1's character into the style of image 2",
    "Put the Nike logo on her shirt, keep everything else the same",
    "a Pokémon sitting in a café in Paris",
    'Replace the sign text with "Hola amigos"',
    'Change the text "OPEN" to "开放中"',
    "Make the cat from image 1 sit on the sofa from image 2",
    "watercolor",
    "McDonald's restaurant at night, neon lights",
    "add the 龙 character on the wall",
]
CHINESE = [
    "把背景换成夜晚",
    "猫",
    "给狗戴上一顶红帽子",
    "把图1的人物放到图2的场景里",
    "把背景换成 Starbucks 咖啡店",
    "让它看起来像 iPhone 广告",
    "将招牌上的文字改成“欢迎光临”",
]
SPANISH = [
    "hazlo de noche",
    "gato con sombrero",
    "un perro rojo",
    "Añade un sombrero rojo al perro",
    "Pon el logo de Nike en su camiseta",
    "Convierte la foto en una pintura al óleo",
    "cambia el fondo por una playa",
    "la persona de la imagen 1 en la ciudad de la imagen 2",
    "¿Puedes quitar el coche?",
    "mujer con un iPhone en la mano, estilo anime",
]
JAPANESE = [
    "夜にして",
    "ねこ",
    "犬に赤い帽子をかぶせて",
    "背景をビーチに変えてください",
    "画像1の人物を画像2の背景に入れて",
    "Nikeのロゴをシャツに付けて",
    "看板の文字を「いらっしゃいませ」に変えて",
    "アニメ風にして",
]


@pytest.mark.parametrize("prompt", ENGLISH)
def test_english_prompts_are_not_translated(prompt: str) -> None:
    assert needs_translation(prompt) is False


@pytest.mark.parametrize("prompt", CHINESE + SPANISH + JAPANESE)
def test_chinese_spanish_and_japanese_prompts_are_translated(prompt: str) -> None:
    assert needs_translation(prompt) is True


def test_a_prompt_that_is_all_quotes_is_judged_by_its_quoted_text() -> None:
    assert (is_english('"hazlo de noche"'), is_english('"make it night"')) == (False, True)
