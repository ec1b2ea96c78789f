"""The reasons the accounts module gives for a refused admin form (AccountError, in English
for the command line and the logs), said in the operator's language on the web pages.

Each kind is recognized by the shape of the English message (mailgw.accounts.accounts and
operators); the value it names (an address, a region …) is put into the translated
sentence. A message of no known kind is shown as it is: English rather than nothing.
tests/unit/test_web_refusals.py raises each real error and checks it is recognized."""

from __future__ import annotations

import re

_VALUE = r"(?P<value>.+?)"

# (the English message's shape, (en, fr, ru)): the first that matches wins
_KINDS: tuple[tuple[re.Pattern[str], tuple[str, str, str]], ...] = tuple(
    (re.compile(shape, re.S), texts) for shape, texts in (
        (r"the password must not be empty or start/end with spaces",
         ("The gateway password must not be empty, nor start or end with a space.",
          "Le mot de passe de passerelle ne peut être vide, ni commencer ou finir par une "
          "espace.",
          "Пароль шлюза не может быть пустым, начинаться или заканчиваться пробелом.")),
        (r"the password must not contain ':' or line breaks",
         ("The gateway password must not contain ':' or a line break.",
          "Le mot de passe de passerelle ne peut contenir ni « : » ni saut de ligne.",
          "Пароль шлюза не может содержать «:» или перевод строки.")),
        (r"the password is longer than 128 characters",
         ("The gateway password is longer than 128 characters.",
          "Le mot de passe de passerelle dépasse 128 caractères.",
          "Пароль шлюза длиннее 128 символов.")),
        (r"the password must not be a reply prefix",
         ("The gateway password must not be a reply prefix (Re, TR, Fwd, AW…).",
          "Le mot de passe de passerelle ne peut être un préfixe de réponse (Re, TR, Fwd, "
          "AW…).",
          "Пароль шлюза не может быть префиксом ответа (Re, TR, Fwd, AW…).")),
        (rf"not a valid address: {_VALUE}$",
         ("Not a valid address: {value}.", "Adresse non valide : {value}.",
          "Неверный адрес: {value}.")),
        (rf"unknown region {_VALUE}( \(|$)",
         ("Unknown region {value}: an ISO 3166 code such as FR.",
          "Région inconnue {value} : un code ISO 3166 comme FR.",
          "Неизвестный регион {value}: нужен код ISO 3166, например RU.")),
        (rf"unsupported language {_VALUE}( \(|$)",
         ("Unsupported language {value}: fr, en or ru.",
          "Langue non prise en charge {value} : fr, en ou ru.",
          "Язык {value} не поддерживается: fr, en или ru.")),
        (rf"unknown time zone {_VALUE}$",
         ("Unknown time zone {value} (e.g. Europe/Paris).",
          "Fuseau horaire inconnu {value} (ex. Europe/Paris).",
          "Неизвестный часовой пояс {value} (например Europe/Moscow).")),
        (r"credits (must be zero or more|cannot go below zero)",
         ("Credits cannot go below zero.", "Les crédits ne peuvent pas être négatifs.",
          "Кредиты не могут быть меньше нуля.")),
        (rf"credits: (expected .*, got )?{_VALUE}$",
         ("Credits: a number, +N or -N, or “unlimited” (not {value}).",
          "Crédits : un nombre, +N ou -N, ou « unlimited » (pas {value}).",
          "Кредиты: число, +N или -N, или «unlimited» (а не {value}).")),
        (rf"{_VALUE} is already an account or a sender address$",
         ("{value} is already an account or a sender address.",
          "{value} est déjà un compte ou une adresse d'expéditeur.",
          "{value} уже занят учётной записью или как адрес отправителя.")),
        (r"window: ",
         ("The sending window is not understood (e.g. 08:00-20:00 Mon-Sat, or none).",
          "La plage d'envoi n'est pas comprise (ex. 08:00-20:00 Mon-Sat, ou none).",
          "Окно отправки не распознано (например 08:00-20:00 Mon-Sat или none).")),
        (r"retry: ",
         ("The retry policy is not understood (e.g. busy=2m,max_attempts=3, or default).",
          "La politique de relance n'est pas comprise (ex. busy=2m,max_attempts=3, ou "
          "default).",
          "Политика повторов не распознана (например busy=2m,max_attempts=3 или "
          "default).")),
        (r"an operator cannot disable their own account",
         ("An operator cannot disable their own account.",
          "Un opérateur ne peut pas désactiver son propre compte.",
          "Оператор не может отключить собственную учётную запись.")),
    ))

_INDEX = {"en": 0, "fr": 1, "ru": 2}


def known(message: str) -> bool:
    return any(shape.match(message) for shape, _texts in _KINDS)


def explain(message: str, lang: str) -> str:
    """The refusal in `lang` when its kind is known; else the English message itself."""
    for shape, texts in _KINDS:
        hit = shape.match(message)
        if hit:
            sentence = texts[_INDEX.get(lang, 0)]
            return sentence.format(value=hit.groupdict().get("value") or "")
    return message
