"""The Contacts and Library pages' words in fr, en and ru (merged into
mailgw.http.web.i18n.WORDS): contact groups with their CSV import, and voice messages."""

from __future__ import annotations

_KEYS = (
    "nav_contacts", "nav_library", "contacts_title", "group_name", "group_help", "members",
    "group_new", "numbers_field", "create", "import_title", "import_help", "file",
    "replace", "import", "n_added", "n_duplicates", "n_invalid", "invalid_list",
    "no_groups", "edit", "edit_help", "delete_group", "in_subject", "group_exists",
    "bad_group", "bad_list", "group_deleted", "group_saved", "library_title",
    "library_help", "ref_help", "sound_file", "upload", "duration", "listen", "no_sounds",
    "sound_stored", "sound_deleted", "delete", "source", "no_audio", "no_members",
    "import_result", "subject_example", "more_invalid")

WORDS: dict[str, dict[str, str]] = {
    "en": dict(zip(_KEYS, (
        "Contacts", "Voice messages", "Contact groups", "Group name",
        "Letters, digits, '.', '-' and '_'. Send to a group with @name among the Subject's "
        "numbers.", "Numbers", "New group",
        "Numbers, one per line (or separated by , or ;)", "Create",
        "Import a list (CSV or TXT)",
        "Separated by ';' or ',', in UTF-8 or as Excel saves it (Windows-1252, Unicode "
        "text). The number column is found by its name (FAX, TEL, NUMERO…) or its content.",
        "File", "Replace the group's numbers", "Import", "Added", "Duplicates", "Invalid",
        "Not numbers:", "No group yet.", "Edit the numbers",
        "Saving replaces the group's numbers with these (an imported list's other columns "
        "are dropped).", "Delete the group", "In the Subject",
        "This group exists: open it to change it.",
        "Not a group name (letters, digits, '.', '-' and '_', at most 100).",
        "The list cannot be read: {why}", "The group is deleted.", "The group is saved.",
        "Voice messages",
        "Upload a WAV or MP3: it is checked and converted as a mail's sound is. Then name "
        "its ref in the Subject of a mail to the voice address.",
        "Letters, digits, - and _ (at most 40).", "Sound (WAV or MP3)", "Upload",
        "Duration", "Listen", "No voice message yet.", "Message {ref} stored ({s} s).",
        "The message is deleted.", "Delete", "Original file",
        "Your browser cannot play this sound.", "No number in this group.",
        "Import into @{name}", "Subject of a mail to {address}:",
        "and {n} more"), strict=True)),
    "fr": dict(zip(_KEYS, (
        "Contacts", "Messages vocaux", "Groupes de contacts", "Nom du groupe",
        "Lettres, chiffres, « . », « - » et « _ ». Envoyez à un groupe avec @nom parmi "
        "les numéros de l'objet.", "Numéros", "Nouveau groupe",
        "Numéros, un par ligne (ou séparés par , ou ;)", "Créer",
        "Importer une liste (CSV ou TXT)",
        "Séparée par « ; » ou « , », en UTF-8 ou comme Excel l'enregistre (Windows-1252, "
        "texte Unicode). La colonne des numéros est trouvée par son nom (FAX, TEL, "
        "NUMERO…) ou son contenu.", "Fichier", "Remplacer les numéros du groupe",
        "Importer", "Ajoutés", "Doublons", "Non valides", "Pas des numéros :",
        "Aucun groupe pour l'instant.", "Modifier les numéros",
        "Enregistrer remplace les numéros du groupe par ceux-ci (les autres colonnes d'une "
        "liste importée sont perdues).", "Supprimer le groupe", "Dans l'objet",
        "Ce groupe existe : ouvrez-le pour le modifier.",
        "Nom de groupe non valide (lettres, chiffres, « . », « - » et « _ », 100 au plus).",
        "La liste est illisible : {why}", "Le groupe est supprimé.",
        "Le groupe est enregistré.", "Messages vocaux",
        "Envoyez un WAV ou un MP3 : il est vérifié et converti comme le son d'un mail. "
        "Citez ensuite sa référence dans l'objet d'un mail à l'adresse vocale.",
        "Lettres, chiffres, - et _ (40 au plus).", "Son (WAV ou MP3)", "Envoyer", "Durée",
        "Écouter", "Aucun message vocal pour l'instant.",
        "Message {ref} enregistré ({s} s).", "Le message est supprimé.", "Supprimer",
        "Fichier d'origine", "Votre navigateur ne peut pas lire ce son.",
        "Aucun numéro dans ce groupe.", "Importer dans @{name}",
        "Objet d'un mail à {address} :", "et {n} de plus"), strict=True)),
    "ru": dict(zip(_KEYS, (
        "Контакты", "Голосовые сообщения", "Группы контактов", "Название группы",
        "Буквы, цифры, «.», «-» и «_». Чтобы отправить группе, укажите @название среди "
        "номеров в теме.", "Номера", "Новая группа",
        "Номера, по одному в строке (или через , или ;)", "Создать",
        "Импорт списка (CSV или TXT)",
        "Разделитель «;» или «,», кодировка UTF-8 или та, в которой сохраняет Excel "
        "(Windows-1252, текст Юникод). Столбец номеров определяется по названию (FAX, TEL, "
        "NUMERO…) или по содержимому.", "Файл", "Заменить номера группы", "Импортировать",
        "Добавлено", "Дубликаты", "Неверные", "Не номера:", "Групп пока нет.",
        "Изменить номера",
        "При сохранении номера группы заменяются этими (остальные столбцы импортированного "
        "списка теряются).", "Удалить группу", "В теме",
        "Такая группа уже есть: откройте её, чтобы изменить.",
        "Неверное название группы (буквы, цифры, «.», «-» и «_», не больше 100).",
        "Список не читается: {why}", "Группа удалена.", "Группа сохранена.",
        "Голосовые сообщения",
        "Загрузите WAV или MP3: он проверяется и преобразуется так же, как звук из письма. "
        "Затем укажите его референс в теме письма на голосовой адрес.",
        "Буквы, цифры, - и _ (не больше 40).", "Звук (WAV или MP3)", "Загрузить",
        "Длительность", "Прослушать", "Голосовых сообщений пока нет.",
        "Сообщение {ref} сохранено ({s} с).", "Сообщение удалено.", "Удалить",
        "Исходный файл", "Ваш браузер не может воспроизвести этот звук.",
        "В этой группе нет номеров.", "Импорт в @{name}", "Тема письма на {address}:",
        "и ещё {n}"), strict=True)),
}
