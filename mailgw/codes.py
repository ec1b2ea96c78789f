"""The reply codes (80–96): one table for the SMTP reply, the ack mail and the docs.

123-Vocal's codes, extended. Each code has a sentence per language and the SMTP
reply it maps to, so no other module invents a reply string.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from mailgw.translit import to_ascii


class Code(IntEnum):
    """The reply codes by name. An int everywhere it travels (SMTP reply, store, headers)."""

    SENDING = 80
    DEFERRED = 81
    BAD_PASSWORD = 82
    NO_CREDIT = 83
    BAD_NUMBER = 84
    BAD_WHEN = 85
    BAD_GROUP = 86
    NO_SENDER = 87
    NO_PASSWORD = 88
    NO_NUMBER = 89
    NO_REF = 90
    BAD_REF = 91
    NO_DOCUMENT = 92
    BAD_DOCUMENT = 93
    OVER_LIMIT = 94
    CANCELLED = 95
    NOTHING_TO_CANCEL = 96


@dataclass(frozen=True)
class ReplyCode:
    code: Code
    accepted: bool
    smtp: str  # "<basic> <enhanced>"
    text: dict[str, str]


_CODES = [
    ReplyCode(Code.SENDING, True, "250 2.0.0", {
        "fr": "Envoi accepté, transmission en cours",
        "en": "Accepted, sending now",
        "ru": "Принято, отправка начата",
    }),
    ReplyCode(Code.DEFERRED, True, "250 2.0.0", {
        "fr": "Envoi accepté, différé à l'heure demandée",
        "en": "Accepted, deferred to the given time",
        "ru": "Принято, отправка отложена до указанного времени",
    }),
    ReplyCode(Code.BAD_PASSWORD, False, "550 5.7.1", {
        "fr": "Mot de passe ou expéditeur non valide",
        "en": "Password or sender not valid",
        "ru": "Неверный пароль или отправитель",
    }),
    ReplyCode(Code.NO_CREDIT, False, "552 5.7.1", {
        "fr": "Crédit insuffisant",
        "en": "Not enough credit",
        "ru": "Недостаточно средств на счёте",
    }),
    ReplyCode(Code.BAD_NUMBER, False, "550 5.1.3", {
        "fr": "Numéro non valide",
        "en": "Number not valid",
        "ru": "Неверный номер",
    }),
    ReplyCode(Code.BAD_WHEN, False, "550 5.5.2", {
        "fr": "Date d'envoi différé non valide (format incorrect ou date passée)",
        "en": "Deferred time not valid (bad format, or in the past)",
        "ru": "Неверное время отложенной отправки (формат или время в прошлом)",
    }),
    ReplyCode(Code.BAD_GROUP, False, "550 5.1.3", {
        "fr": "Groupe de contacts vide ou inconnu",
        "en": "Contact group empty or unknown",
        "ru": "Группа контактов пуста или не найдена",
    }),
    ReplyCode(Code.NO_SENDER, False, "550 5.7.1", {
        "fr": "Adresse de l'expéditeur absente",
        "en": "Sender address missing",
        "ru": "Не указан адрес отправителя",
    }),
    ReplyCode(Code.NO_PASSWORD, False, "550 5.7.1", {
        "fr": "Mot de passe vide",
        "en": "Password empty",
        "ru": "Пароль не указан",
    }),
    ReplyCode(Code.NO_NUMBER, False, "550 5.1.3", {
        "fr": "Numéro vide",
        "en": "Number empty",
        "ru": "Номер не указан",
    }),
    ReplyCode(Code.NO_REF, False, "550 5.5.2", {
        "fr": "Référence vide (ni message enregistré ni son joint)",
        "en": "Ref empty (no recorded message and no sound attached)",
        "ru": "Не указана ссылка (нет записанного сообщения и звукового файла)",
    }),
    ReplyCode(Code.BAD_REF, False, "550 5.5.2", {
        "fr": "Référence non valide",
        "en": "Ref not valid",
        "ru": "Неверная ссылка",
    }),
    ReplyCode(Code.NO_DOCUMENT, False, "554 5.6.0", {
        "fr": "Document absent (aucun PDF joint ni document enregistré)",
        "en": "Document missing (no PDF attached and no stored document)",
        "ru": "Нет документа (не приложен PDF и нет сохранённого документа)",
    }),
    ReplyCode(Code.BAD_DOCUMENT, False, "554 5.6.0", {
        "fr": "Document inutilisable (endommagé, chiffré, pas un PDF, son trop long…)",
        "en": "Document not usable (broken, encrypted, not a PDF, sound too long…)",
        "ru": "Документ непригоден (повреждён, зашифрован, не PDF, звук слишком длинный…)",
    }),
    ReplyCode(Code.OVER_LIMIT, False, "552 5.3.4", {
        "fr": "Limite dépassée (pages, taille, destinataires)",
        "en": "Over a limit (pages, size, recipients)",
        "ru": "Превышен лимит (страницы, размер, получатели)",
    }),
    ReplyCode(Code.CANCELLED, True, "250 2.0.0", {
        "fr": "Envoi différé annulé",
        "en": "Deferred send cancelled",
        "ru": "Отложенная отправка отменена",
    }),
    ReplyCode(Code.NOTHING_TO_CANCEL, False, "550 5.5.2", {
        "fr": "Aucun envoi différé à annuler",
        "en": "Nothing to cancel",
        "ru": "Нет отложенной отправки для отмены",
    }),
]

CODES: dict[int, ReplyCode] = {c.code: c for c in _CODES}


# The second sentence of a refusal: what exactly is wrong, in the account's language.
DETAILS: dict[str, dict[str, str]] = {
    "not_pdf": {"fr": "{name} n'est pas un fichier PDF",
                "en": "{name} is not a PDF file",
                "ru": "{name} не является файлом PDF"},
    "encrypted": {"fr": "{name} est protégé par un mot de passe ; envoyez-le sans protection",
                  "en": "{name} is protected by a password; send it unprotected",
                  "ru": "{name} защищён паролем; отправьте его без защиты"},
    "broken": {"fr": "{name} est endommagé ou tronqué et ne peut pas être lu",
               "en": "{name} is damaged or truncated and cannot be read",
               "ru": "{name} повреждён или обрезан и не читается"},
    "no_pages": {"fr": "{name} ne contient aucune page",
                 "en": "{name} has no page",
                 "ru": "в {name} нет ни одной страницы"},
    "unreadable": {"fr": "{name} n'a pas pu être lu (trop long ou trop lourd à analyser)",
                   "en": "{name} could not be read (too slow or too large to analyse)",
                   "ru": "{name} не удалось прочитать (слишком долго или слишком объёмно)"},
    "merge_failed": {"fr": "les PDF n'ont pas pu être réunis en un seul fax",
                     "en": "the PDF files could not be joined into one fax",
                     "ru": "PDF-файлы не удалось объединить в один факс"},
    # fax pages (mailgw.documents.render): the caps against render-time bombs, and office files
    "page_too_large": {"fr": "{name} : la page {page} mesure {w_cm} x {h_cm} cm, au plus "
                             "{limit_cm} cm de côté",
                       "en": "{name}: page {page} is {w_in} x {h_in} in, at most {limit_in} in "
                             "on a side",
                       "ru": "{name}: страница {page} размером {w_cm} x {h_cm} см, не более "
                             "{limit_cm} см по стороне"},
    "bitmap_too_large": {"fr": "{name}, page {page} : l'image occuperait {mb} Mo une fois "
                               "décodée, au plus {limit} Mo",
                         "en": "{name}, page {page}: the image would take {mb} MB once decoded, "
                               "at most {limit} MB",
                         "ru": "{name}, страница {page}: изображение заняло бы {mb} МБ после "
                               "распаковки, не более {limit} МБ"},
    "content_too_large": {"fr": "{name}, page {page} : les instructions de dessin dépassent "
                                "{limit} Mo une fois décompressées",
                          "en": "{name}, page {page}: its drawing instructions expand to more "
                                "than {limit} MB",
                          "ru": "{name}, страница {page}: команды рисования после распаковки "
                                "больше {limit} МБ"},
    "office_unavailable": {"fr": "{name} : les fichiers Word, Excel, OpenDocument et RTF ne "
                                 "sont pas acceptés ici ; envoyez un PDF, TIFF, JPEG ou PNG",
                           "en": "{name}: Word, Excel, OpenDocument and RTF files are not "
                                 "accepted here; send a PDF, TIFF, JPEG or PNG",
                           "ru": "{name}: файлы Word, Excel, OpenDocument и RTF здесь не "
                                 "принимаются; отправьте PDF, TIFF, JPEG или PNG"},
    "office_failed": {"fr": "{name} n'a pas pu être converti en PDF ; envoyez-le en PDF",
                      "en": "{name} could not be converted to PDF; send it as a PDF",
                      "ru": "{name} не удалось преобразовать в PDF; отправьте его в формате "
                            "PDF"},
    "sound_format": {"fr": "{name} : format de son non accepté ; envoyez un fichier WAV, MP3, "
                           "M4A, OGG ou AMR",
                     "en": "{name}: sound format not accepted; send a WAV, MP3, M4A, OGG or AMR "
                           "file",
                     "ru": "{name}: формат звука не принимается; отправьте файл WAV, MP3, M4A, "
                           "OGG или AMR"},
    "sound_not_audio": {"fr": "{name} n'est pas un fichier son (WAV, MP3, M4A, OGG ou AMR)",
                        "en": "{name} is not a sound file (WAV, MP3, M4A, OGG or AMR)",
                        "ru": "{name} не является звуковым файлом (WAV, MP3, M4A, OGG или AMR)"},
    "broken_sound": {"fr": "{name} est endommagé et ne peut pas être décodé",
                     "en": "{name} is damaged and cannot be decoded",
                     "ru": "{name} повреждён и не декодируется"},
    "sound_silent": {"fr": "{name} est silencieux : aucune voix ne s'y entend",
                     "en": "{name} is silent: no voice can be heard in it",
                     "ru": "{name} беззвучен: в нём не слышно голоса"},
    "sound_empty": {"fr": "{name} est vide ou illisible",
                    "en": "{name} is empty or unreadable",
                    "ru": "{name} пуст или не читается"},
    "sound_too_long": {"fr": "{name} dure {seconds} s, au plus {limit} s",
                       "en": "{name} lasts {seconds} s, at most {limit} s",
                       "ru": "{name} длится {seconds} с, максимум {limit} с"},
    "partial_message": {"fr": "message fragmenté (message/partial) : envoyez le document en un "
                              "seul message",
                        "en": "fragmented mail (message/partial): send the document in one mail",
                        "ru": "письмо разбито на части (message/partial): отправьте документ "
                              "одним письмом"},
    "too_many_pages": {"fr": "{pages} pages, au plus {limit}",
                       "en": "{pages} pages, at most {limit}",
                       "ru": "{pages} стр., максимум {limit}"},
    "too_many_recipients": {"fr": "{count} destinataires, au plus {limit}",
                            "en": "{count} recipients, at most {limit}",
                            "ru": "{count} получателей, максимум {limit}"},
    "subject_too_long": {"fr": "objet de plus de {limit} octets",
                         "en": "Subject over {limit} bytes",
                         "ru": "тема длиннее {limit} байт"},
    "list_too_long": {"fr": "{name} : plus de {limit} lignes",
                      "en": "{name}: more than {limit} lines",
                      "ru": "{name}: более {limit} строк"},
    "list_no_column": {"fr": "{name} : aucune colonne de numéros (nommée FAX, TÉLÉPHONE, TEL, "
                             "MOBILE, PORTABLE, GSM, SMS, PHONE ou NUMÉRO), ni une seule colonne "
                             "de numéros sans en-tête",
                       "en": "{name}: no number column (named FAX, PHONE, TEL, TÉLÉPHONE, "
                             "MOBILE, PORTABLE, GSM, SMS or NUMÉRO), nor one column of numbers "
                             "without a header",
                       "ru": "{name}: нет столбца с номерами (с заголовком ТЕЛЕФОН, ФАКС, "
                             "МОБИЛЬНЫЙ, НОМЕР, FAX, PHONE или TEL) и нет единственного столбца "
                             "номеров без заголовка"},
    "credit_short": {"fr": "{needed} crédits nécessaires, {left} disponibles",
                     "en": "{needed} credits needed, {left} left",
                     "ru": "нужно кредитов: {needed}, осталось: {left}"},
    "groups_unknown": {"fr": "groupe vide ou inconnu : {names}",
                       "en": "group empty or unknown: {names}",
                       "ru": "группа пуста или не найдена: {names}"},
    "invalid_numbers": {"fr": "numéros non valides : {numbers}",
                        "en": "numbers not valid: {numbers}",
                        "ru": "неверные номера: {numbers}"},
    "ref_unknown": {"fr": "aucun message enregistré sous la référence {ref}",
                    "en": "no recorded message under ref {ref}",
                    "ru": "нет записанного сообщения со ссылкой {ref}"},
    # voice: the message library and the call options (mailgw.accounts.voice)
    "ref_name": {"fr": "« {ref} » ne peut pas nommer un message : lettres, chiffres, - et _ "
                       "(au plus 40)",
                 "en": "\"{ref}\" cannot name a message: letters, digits, - and _ (at most 40)",
                 "ru": "«{ref}» не может быть именем сообщения: буквы, цифры, - и _ "
                       "(не более 40)"},
    "message_stored": {"fr": "message {ref} enregistré, {seconds} s",
                       "en": "message {ref} stored, {seconds} s",
                       "ru": "сообщение {ref} сохранено, {seconds} с"},
    "message_replaced": {"fr": "message {ref} remplacé, {seconds} s",
                         "en": "message {ref} replaced, {seconds} s",
                         "ru": "сообщение {ref} заменено, {seconds} с"},
    "options_used": {"fr": "options d'appel : {options}",
                     "en": "call options: {options}",
                     "ru": "параметры звонка: {options}"},
    "option_unknown": {"fr": "option inconnue ignorée : {option} (options : {known})",
                       "en": "unknown option ignored: {option} (options: {known})",
                       "ru": "неизвестный параметр пропущен: {option} (параметры: {known})"},
    "option_line": {"fr": "ligne d'options incomprise, ignorée : {line}",
                    "en": "options line not understood, ignored: {line}",
                    "ru": "непонятная строка параметров пропущена: {line}"},
    "option_number": {"fr": "{option} : « {value} » n'est pas un numéro valide, option ignorée",
                      "en": "{option}: \"{value}\" is not a valid number, option ignored",
                      "ru": "{option}: «{value}» — неверный номер, параметр пропущен"},
    "cover_page": {"fr": "une page de garde propre à chaque destinataire est ajoutée en tête "
                         "(comptée dans les pages)",
                   "en": "a cover page of its own is put first for each recipient (counted in "
                         "the pages)",
                   "ru": "для каждого получателя первой добавляется своя титульная страница "
                         "(учтена в числе страниц)"},
    "header_line": {"fr": "une ligne d'en-tête (date, expéditeur, page x/y) est imprimée en haut "
                          "de chaque page",
                    "en": "a header line (date, sender, page x/y) is printed at the top of "
                          "every page",
                    "ru": "вверху каждой страницы печатается строка заголовка (дата, "
                          "отправитель, страница x/y)"},
    # a preview or a test before a campaign (mailgw.intake.trial)
    "preview_only": {"fr": "aperçu seulement : rien n'a été envoyé ni débité ; la première page "
                           "est ci-dessous, toutes les pages sont dans le PDF joint",
                     "en": "preview only: nothing was sent and no credit was used; the first "
                           "page is below, all the pages are in the attached PDF",
                     "ru": "только предпросмотр: ничего не отправлено и не списано; первая "
                           "страница ниже, все страницы во вложенном PDF"},
    "preview_failed": {"fr": "les pages de l'aperçu n'ont pas pu être dessinées ({error})",
                       "en": "the preview's pages could not be drawn ({error})",
                       "ru": "страницы предпросмотра не удалось нарисовать ({error})"},
    "test_only": {"fr": "essai : envoyé seulement au numéro d'essai du compte, {number}",
                  "en": "test: sent only to the account's test number, {number}",
                  "ru": "тест: отправлено только на тестовый номер аккаунта, {number}"},
    "test_number_missing": {"fr": "essai demandé, mais le compte n'a pas de numéro d'essai ; "
                                  "l'opérateur le fixe par « mailgw account set --test-number "
                                  "NUMÉRO »",
                            "en": "a test was asked for, but the account has no test number; "
                                  "the operator sets it with \"mailgw account set --test-number "
                                  "NUMBER\"",
                            "ru": "запрошен тест, но у аккаунта нет тестового номера; оператор "
                                  "задаёт его командой «mailgw account set --test-number "
                                  "НОМЕР»"},
    "option_value": {"fr": "{option} : « {value} » non valide ({allowed}), option ignorée",
                     "en": "{option}: \"{value}\" not valid ({allowed}), option ignored",
                     "ru": "{option}: «{value}» недопустимо ({allowed}), параметр пропущен"},
    "callerid_unverified": {"fr": "callerid : {value} n'est pas un numéro vérifié du compte ; "
                                  "le numéro sera masqué",
                            "en": "callerid: {value} is not a verified number of this account; "
                                  "the number will be hidden",
                            "ru": "callerid: {value} не является подтверждённым номером "
                                  "аккаунта; номер будет скрыт"},
}


def detail(key: str, lang: str, **params: object) -> str:
    """A refusal's detail sentence in `lang`, with its parameters filled in."""
    texts = DETAILS[key]
    return (texts.get(lang) or texts["en"]).format(**params)


@dataclass(frozen=True)
class Detail:
    """A detail sentence not yet written: its DETAILS key and parameters, so a decision
    stays free of languages and each reader gets it in their own (`text`)."""

    key: str
    params: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, key: str, **params: object) -> Detail:
        return cls(key, tuple(params.items()))

    def text(self, lang: str) -> str:
        return detail(self.key, lang, **dict(self.params))


# Code 80 for a preview (mailgw.intake.trial): accepted, but "sending now" would be untrue.
PREVIEW_SENTENCE = {"fr": "Accepté pour un aperçu, rien n'est envoyé",
                    "en": "Accepted for a preview, nothing is sent",
                    "ru": "Принято для предпросмотра, ничего не отправляется"}


def sentence(code: int, lang: str, *, preview: bool = False) -> str:
    """The human sentence for a code in `lang` (English when the language is unknown)."""
    text = PREVIEW_SENTENCE if preview and code == Code.SENDING else CODES[code].text
    return text.get(lang) or text["en"]


def is_accepted(code: int) -> bool:
    return CODES[code].accepted


def smtp_reply(code: int, lang: str, detail: str = "", *, utf8: bool = False,
               preview: bool = False) -> str:
    """The SMTP reply line for a code: "<smtp status> [NN] <sentence>[ (detail)]".

    Without SMTPUTF8 the reply must be ASCII: the sentence and the detail stay in the
    account's language, transliterated (mailgw.translit: French without its accents,
    Russian in Latin letters). The ack mail carries the exact text.
    """
    rc = CODES[code]
    text = sentence(code, lang, preview=preview)
    if detail:
        text = f"{text} ({detail})"
    if not utf8:
        text = to_ascii(text)
    # one line, at most 400 octets of text (a reply line is 512 octets at most, RFC 5321)
    text = " ".join(text.split()).encode()[:400].decode("utf-8", "ignore")
    return f"{rc.smtp} [{code}] {text}"
