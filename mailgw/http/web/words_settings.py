"""The Settings pages' words in fr, en and ru (merged into mailgw.http.web.i18n.WORDS):
notices, webhook, fax defaults, test number, allowed senders, API tokens, gateway password."""

from __future__ import annotations

_KEYS = (
    "nav_settings", "set_title", "access_title", "saved", "notices_title", "notice_mode",
    "mode_default", "mode_all", "mode_failures", "mode_summary", "threshold",
    "threshold_help", "language", "bad_notices", "webhook_title", "webhook_help",
    "webhook_url", "webhook_none", "webhook_now", "webhook_secret", "webhook_remove",
    "bad_webhook", "fax_title", "quality", "q_normal", "q_high", "q_best", "cover",
    "test_title", "test_help", "bad_test_number", "senders_title", "senders_help",
    "sender_add", "address", "remove", "own_address", "bad_sender", "tokens_title",
    "tokens_help", "token_name", "scopes", "sc_jobs_write", "sc_jobs_read", "sc_library",
    "sc_admin", "token_create", "token_shown", "token_prefix", "last_used", "never",
    "revoke", "revoked", "active", "bad_token", "no_tokens", "gw_title", "gw_help", "gw_new",
    "gw_rules", "gw_same_as_web", "gw_changed", "sections", "bad_value")

WORDS: dict[str, dict[str, str]] = {
    "en": dict(zip(_KEYS, (
        "Settings", "Settings", "API tokens and gateway password", "Saved.", "Notices",
        "What to send", "The gateway's setting ({v})", "A notice for every number",
        "Only failures", "One summary per job", "Summary threshold",
        "From this many numbers, a job gets one summary instead of a notice per number "
        "(and lists and groups always do); 0: never by count nor for lists. Empty: the "
        "gateway's ({n}).", "Language",
        "Choose one of the modes, and a threshold from 0 to 100000.", "Webhook",
        "Signed POST requests (delivery.final, job.final) go to this URL. Saving it makes a "
        "new secret, shown once.", "Webhook URL", "No webhook.", "Now: {url}",
        "The secret to check the signatures (shown only now, copy it):",
        "Remove the webhook", "The URL must start with https:// (or http://), without spaces.",
        "Faxes", "Default quality", "Normal", "High", "Best",
        "Add a cover page to my faxes", "Test number",
        "The only number a mail with \"test: yes\" dials. Empty: none.",
        "Not a valid fax number.", "Allowed senders",
        "Mails from these addresses may send for this account, with its gateway password.",
        "Add an address", "Address", "Remove", "(the account's own)",
        "Not a valid address, or it already sends for an account.", "API tokens",
        "A token lets a program use the REST API (/api/v1) for this account.", "Name",
        "Scopes", "send jobs", "read jobs", "contacts and voice messages",
        "everything, settings included", "Create a token",
        "Your new token (shown only now, copy it):", "Starts with", "Last used", "Never",
        "Revoke", "Revoked", "Active",
        "A token needs a name (unique, at most 100 characters) and at least one scope.",
        "No token.", "Gateway password",
        "The password in the Subject of your mails. It is not your web password; a change "
        "applies to the next mail.", "New gateway password",
        "It cannot be empty, start or end with a space, contain ':' or a line break, be "
        "longer than 128 characters, or be a reply prefix (Re, TR, Fwd…).",
        "This is your web password: choose another one for the gateway.",
        "The gateway password is changed.", "Sections",
        "This value is not one of those offered."), strict=True)),
    "fr": dict(zip(_KEYS, (
        "Réglages", "Réglages", "Jetons d'API et mot de passe de passerelle", "Enregistré.",
        "Avis de remise", "Quoi envoyer", "Le réglage de la passerelle ({v})",
        "Un avis pour chaque numéro", "Seulement les échecs", "Un bilan par envoi",
        "Seuil du bilan",
        "À partir de ce nombre de numéros, un envoi reçoit un seul bilan au lieu d'un avis "
        "par numéro (les listes et les groupes aussi) ; 0 : jamais, ni par nombre ni pour "
        "les listes. Vide : celui de la passerelle ({n}).", "Langue",
        "Choisissez un des modes, et un seuil de 0 à 100000.", "Webhook",
        "Des requêtes POST signées (delivery.final, job.final) partent vers cette URL. "
        "L'enregistrer crée un nouveau secret, affiché une seule fois.", "URL du webhook",
        "Aucun webhook.", "Actuellement : {url}",
        "Le secret pour vérifier les signatures (affiché seulement maintenant, copiez-le) :",
        "Supprimer le webhook",
        "L'URL doit commencer par https:// (ou http://), sans espace.", "Fax",
        "Qualité par défaut", "Normale", "Haute", "Maximale",
        "Ajouter une page de garde à mes fax", "Numéro de test",
        "Le seul numéro qu'appelle un mail avec « test: yes ». Vide : aucun.",
        "Numéro de fax non valide.", "Expéditeurs autorisés",
        "Les mails de ces adresses peuvent envoyer pour ce compte, avec son mot de passe de "
        "passerelle.", "Ajouter une adresse", "Adresse", "Retirer", "(celle du compte)",
        "Adresse non valide, ou elle envoie déjà pour un compte.", "Jetons d'API",
        "Un jeton permet à un programme d'utiliser l'API REST (/api/v1) pour ce compte.",
        "Nom", "Droits", "envoyer", "consulter les envois", "contacts et messages vocaux",
        "tout, réglages compris", "Créer un jeton",
        "Votre nouveau jeton (affiché seulement maintenant, copiez-le) :", "Commence par",
        "Dernière utilisation", "Jamais", "Révoquer", "Révoqué", "Actif",
        "Un jeton doit avoir un nom (unique, 100 caractères au plus) et au moins un droit.",
        "Aucun jeton.", "Mot de passe de passerelle",
        "Le mot de passe de l'objet de vos mails. Ce n'est pas votre mot de passe web ; un "
        "changement vaut dès le mail suivant.", "Nouveau mot de passe de passerelle",
        "Il ne peut être vide, commencer ou finir par une espace, contenir « : » ou un saut "
        "de ligne, dépasser 128 caractères, ni être un préfixe de réponse (Re, TR, Fwd…).",
        "C'est votre mot de passe web : choisissez-en un autre pour la passerelle.",
        "Le mot de passe de passerelle est changé.", "Rubriques",
        "Cette valeur ne fait pas partie de celles proposées."), strict=True)),
    "ru": dict(zip(_KEYS, (
        "Настройки", "Настройки", "API-токены и пароль шлюза", "Сохранено.", "Уведомления",
        "Что присылать", "Настройка шлюза ({v})", "Уведомление по каждому номеру",
        "Только о неудачах", "Один итог по заданию", "Порог итога",
        "Начиная с этого числа номеров задание получает один итог вместо уведомления по "
        "каждому номеру (списки и группы тоже); 0: никогда, ни по числу, ни для списков. "
        "Пусто: значение шлюза ({n}).", "Язык",
        "Выберите режим и порог от 0 до 100000.", "Вебхук",
        "Подписанные POST-запросы (delivery.final, job.final) уходят на этот URL. При "
        "сохранении создаётся новый секрет, он показывается один раз.", "URL вебхука",
        "Вебхук не задан.", "Сейчас: {url}",
        "Секрет для проверки подписей (показывается только сейчас, скопируйте его):",
        "Удалить вебхук", "URL должен начинаться с https:// (или http://), без пробелов.",
        "Факсы", "Качество по умолчанию", "Обычное", "Высокое", "Наилучшее",
        "Добавлять титульную страницу к моим факсам", "Тестовый номер",
        "Единственный номер, на который звонит письмо с «test: yes». Пусто: нет.",
        "Неверный номер факса.", "Разрешённые отправители",
        "Письма с этих адресов могут отправлять от имени этой учётной записи с её паролем "
        "шлюза.", "Добавить адрес", "Адрес", "Убрать", "(адрес учётной записи)",
        "Неверный адрес, или он уже отправляет от имени учётной записи.", "API-токены",
        "Токен даёт программе доступ к REST API (/api/v1) от имени этой учётной записи.",
        "Название", "Права", "отправка заданий", "просмотр заданий",
        "контакты и голосовые сообщения", "всё, включая настройки", "Создать токен",
        "Ваш новый токен (показывается только сейчас, скопируйте его):", "Начинается с",
        "Последнее использование", "Никогда", "Отозвать", "Отозван", "Действует",
        "У токена должно быть название (уникальное, не длиннее 100 символов) и хотя бы "
        "одно право.", "Токенов нет.", "Пароль шлюза",
        "Пароль в теме ваших писем. Это не пароль для входа; изменение действует со "
        "следующего письма.", "Новый пароль шлюза",
        "Он не может быть пустым, начинаться или заканчиваться пробелом, содержать «:» или "
        "перевод строки, быть длиннее 128 символов или быть префиксом ответа (Re, TR, "
        "Fwd…).", "Это ваш пароль для входа: выберите для шлюза другой.",
        "Пароль шлюза изменён.", "Разделы",
        "Этого значения нет среди предложенных."), strict=True)),
}
